"""Theory of the threshold training dimension (methods.md §7; Larsen et al. 2022 via Gordon).

A random d-dimensional affine subspace θ0 + span(A) meets the sub-level set S(ε) iff span(A)
meets the cone C = cone(S(ε) − θ0), i.e. the radial projection of S(ε) onto the unit sphere
around θ0. For a convex S (a quadratic well) C is a convex cone and the intersection has a sharp
phase transition (Amelunxen, Lotz, McCoy & Tropp 2014, "Living on the edge", Thm. I):

    d + δ(C) ≤ D − a_η √D  ⇒  P(meet) ≤ η,      d + δ(C) ≥ D + a_η √D  ⇒  P(meet) ≥ 1 − η,

with a_η = √(8 log(4/η)) and δ(C) = E‖Π_C(g)‖² the statistical dimension, which is the squared
Gaussian width of C ∩ S^{D−1} up to one: w² ≤ δ ≤ w² + 1. Hence d*_theory(ε) = D − w² ≈ D − δ,
and Gordon's escape theorem bounds P_s(d) ≤ 3.5·exp(−(a_{D−d} − w)²/18) when a_{D−d} > w.

Everything here is numerical (Monte Carlo over g ~ N(0, I_D) with float64 NumPy), with the
closed forms alongside where they are correct: the ball, a subspace, an ellipsoid's width bounds
√(2/π)·√(Σ r_i²) ≤ w ≤ √(Σ r_i²), and the projected ellipsoid's small-ellipsoid form
w² ≈ Σ r_i²/R², which holds (up to O(1)) only when every semi-axis is small against R
(:data:`SMALL_FORM_MAX_RATIO`); beyond that no closed form is given. (A "saturating" form
Σ r_i²/(R² + r_i²) was printed before: it is wrong in general — 905 against the exact 950 for a
well with 50 stiff directions, and it misses the cone's saturation — and is gone.)

The quadratic well is L(θ) = ½ (θ − θ*)ᵀ H (θ − θ*) with H's eigenvalues λ_i, θ* = 0 and θ0 at
distance R. A Gaussian subspace is rotation invariant, so H can be taken diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dofbench.errors import DofbenchError

# ------------------------------------------------------------------------------ basic quantities


def chi_mean(k: int | float) -> float:
    """a_k = E‖g‖ for g ~ N(0, I_k) = √2 Γ((k+1)/2) / Γ(k/2) (≈ √k)."""
    if k <= 0:
        return 0.0
    return math.sqrt(2.0) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))


def alamt_a(eta: float) -> float:
    """a_η = √(8 log(4/η)) of the approximate kinematic formula (Amelunxen et al. 2014)."""
    return math.sqrt(8 * math.log(4 / eta))


@dataclass(frozen=True)
class MCEstimate:
    """A Monte Carlo mean with its standard error."""

    mean: float
    stderr: float
    n: int

    def within(self, value: float, sigmas: float = 4.0, slack: float = 0.0) -> bool:
        return abs(self.mean - value) <= sigmas * self.stderr + slack


def _mc(values: np.ndarray) -> MCEstimate:
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    return MCEstimate(float(values.mean()), float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf"), n)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def gaussian_width(support: Callable[[np.ndarray], np.ndarray], D: int, n: int = 2000,
                   seed: int | np.random.Generator | None = 0, chunk: int = 512) -> MCEstimate:
    """w(S) = E sup_{x∈S} ⟨g, x⟩ by Monte Carlo; ``support(G)`` returns sup_{x∈S}⟨g, x⟩ for each
    row g of G (the support function of S)."""
    rng = _rng(seed)
    out = []
    for i in range(0, n, chunk):
        g = rng.standard_normal((min(chunk, n - i), D))
        out.append(np.asarray(support(g), dtype=np.float64))
    return _mc(np.concatenate(out))


# support functions of simple sets
def ball_support(radius: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    return lambda g: radius * np.linalg.norm(g, axis=1)


def subspace_ball_support(k: int) -> Callable[[np.ndarray], np.ndarray]:
    """The unit ball of the coordinate subspace span(e_1..e_k) (a random one is the same in law)."""
    return lambda g: np.linalg.norm(g[:, :k], axis=1)


def ellipsoid_support(semi_axes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    r = np.asarray(semi_axes, dtype=np.float64)
    return lambda g: np.linalg.norm(g * r, axis=1)


def ball_width(D: int, radius: float = 1.0) -> float:
    return radius * chi_mean(D)


def ellipsoid_width_bounds(semi_axes: np.ndarray) -> tuple[float, float]:
    """√(2/π)·√(Σ r_i²) ≤ w(ellipsoid) ≤ √(Σ r_i²)."""
    s = math.sqrt(float(np.sum(np.square(semi_axes))))
    return math.sqrt(2 / math.pi) * s, s


def semi_axes(eigenvalues: np.ndarray, epsilon: float) -> np.ndarray:
    """Semi-axes r_i = √(2ε/λ_i) of the sub-level set {½ θᵀHθ ≤ ε}."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if np.any(lam <= 0):
        raise DofbenchError("eigenvalues: the quadratic-well theory needs a positive definite H (all λ > 0)")
    return np.sqrt(2 * epsilon / lam)


# --------------------------------------------------------------------- the projected ellipsoid

def _cone_projection_norms(g: np.ndarray, M: np.ndarray, theta0: np.ndarray, iters: int = 80) -> np.ndarray:
    """‖Π_C(g)‖ for each row, C = cone(E − θ0), E = {θ : θᵀ diag(M) θ ≤ 1}, θ0 outside E.

    C = {v : vᵀQv ≤ 0, mᵀv ≤ 0} with m = Mθ0, c = θ0ᵀMθ0 − 1, Q = cM − mmᵀ. Cases: g ∈ C (Π = g);
    g in the polar cone {y : √(yᵀM⁻¹y) ≤ θ0ᵀy} (Π = 0); otherwise Π = (I + μQ)⁻¹ g on the
    boundary, μ a root of vᵀQv = 0 (Sherman–Morrison makes each evaluation O(D)).
    """
    n, D = g.shape
    m = theta0 * M
    c = np.sum(theta0 * m, axis=1) - 1.0
    mg = np.sum(m * g, axis=1)
    gQg = c * np.sum(M * g * g, axis=1) - mg ** 2
    in_cone = (gQg <= 0) & (mg <= 0)
    in_polar = np.sqrt(np.sum(g * g / M, axis=1)) <= np.sum(theta0 * g, axis=1)
    out = np.where(in_cone, np.linalg.norm(g, axis=1), 0.0)
    rest = ~(in_cone | in_polar)
    if not rest.any():
        return out
    g_, m_, c_ = g[rest], m[rest], c[rest]

    def psi(mu):  # 1 − μ mᵀB⁻¹m, B = I + μcM
        return 1.0 - mu * np.sum(m_ * m_ / (1.0 + mu[:, None] * c_[:, None] * M), axis=1)

    def v_of(mu):
        Binv = 1.0 / (1.0 + mu[:, None] * c_[:, None] * M)
        a = np.sum(m_ * Binv * g_, axis=1)
        return Binv * g_ + (mu * a / psi(mu))[:, None] * Binv * m_

    def phi(mu):
        v = v_of(mu)
        return c_ * np.sum(M * v * v, axis=1) - np.sum(m_ * v, axis=1) ** 2, v

    # μ_s: the singular point of I + μQ (ψ decreases from 1 to −1/c); bisection in log μ
    lo = np.full(len(c_), -60.0)
    hi = np.full(len(c_), 60.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        pos = psi(np.exp(mid)) > 0
        lo, hi = np.where(pos, mid, lo), np.where(pos, hi, mid)
    mu_s = np.exp(lo)
    # the root of φ on (0, μ_s): φ decreases from gᵀQg > 0 to −∞; bisection in τ = μ/μ_s
    tlo, thi = np.zeros(len(c_)), np.ones(len(c_))
    for _ in range(iters):
        tm = (tlo + thi) / 2
        pos = phi(tm * mu_s)[0] > 0
        tlo, thi = np.where(pos, tm, tlo), np.where(pos, thi, tm)
    v = phi(tlo * mu_s)[1]
    norms = np.linalg.norm(v, axis=1)
    # the root found lies on the other nappe (−C) when g's component along Q's negative
    # eigenvector has the wrong sign: then Π_C(g) = v(μ) with μ ∈ (μ_s, ∞), where
    # (1 + μq_1)²·vᵀQv increases monotonically from q_1 g_1² < 0; bisection in log(μ/μ_s − 1)
    wrong = np.sum(m_ * v, axis=1) > 0
    if wrong.any():
        g_, m_, c_, mu_w = g_[wrong], m_[wrong], c_[wrong], mu_s[wrong]
        lo = np.full(len(c_), -40.0)
        hi = np.full(len(c_), 40.0)
        for _ in range(iters):
            mid = (lo + hi) / 2
            neg = phi(mu_w * (1 + np.exp(mid)))[0] < 0
            lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
        v = phi(mu_w * (1 + np.exp(hi)))[1]
        ok = np.sum(m_ * v, axis=1) <= 0
        norms[wrong] = np.where(ok, np.linalg.norm(v, axis=1), 0.0)
    out[np.nonzero(rest)[0]] = norms
    return out


SMALL_FORM_MAX_RATIO = 0.1
"""The small-ellipsoid form Σ r_i²/R² is given only when every semi-axis r_i ≤ this × R."""


@dataclass(frozen=True)
class ProjectedWidth:
    """The projected sub-level set of a quadratic well seen from distance R."""

    D: int
    epsilon: float
    R: float
    statistical_dimension: MCEstimate   # δ(C) = E‖Π_C g‖²  (≈ w², w² ≤ δ ≤ w² + 1)
    width: MCEstimate                   # E‖Π_C g‖ = w(C ∩ B^D) ≥ w(C ∩ S^{D−1})
    small_form: float | None            # Σ r_i² / R², only where every r_i ≤ R/10 (None beyond)
    intrinsic_var: float                # Var(V) = Var‖Π_C g‖² − 2δ (V: intrinsic-volume index)
    capped: float = 0.0                 # share of semi-axes cut at ``cap`` (projected_width)

    @property
    def w2(self) -> float:
        return self.statistical_dimension.mean

    @property
    def intrinsic_sd(self) -> float:
        """Standard deviation of the cone's intrinsic-volume distribution: the width of the
        transition of P_s in d (‖Π_C g‖² is a χ² with V degrees of freedom, V random)."""
        return math.sqrt(max(self.intrinsic_var, 0.0))

    @property
    def d_star(self) -> float:
        """d*_theory(ε) = D − w² (with w² = δ(C))."""
        return self.D - self.w2


def projected_width(eigenvalues: np.ndarray, epsilon: float, R: float, n: int = 1000,
                    seed: int | np.random.Generator | None = 0, theta0: np.ndarray | None = None,
                    chunk: int = 250, cap: float | None = None) -> ProjectedWidth:
    """Statistical dimension and width of cone(S(ε) − θ0) by Monte Carlo, no small-ellipsoid
    approximation. θ0 = R·u with u uniform on the sphere, drawn afresh for every sample g (so the
    estimate averages over the initial direction, as trials do), unless ``theta0`` is given.
    ``cap``: semi-axes longer than this are cut to it (a local model trusted only that far)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    D = len(lam)
    r = semi_axes(lam, epsilon)
    capped = 0.0
    if cap is not None:
        capped = float(np.mean(r > cap))
        r = np.minimum(r, cap)
    M = 1.0 / r ** 2
    rng = _rng(seed)
    sq, nm, gg = [], [], []
    for i in range(0, n, chunk):
        k = min(chunk, n - i)
        g = rng.standard_normal((k, D))
        if theta0 is None:
            u = rng.standard_normal((k, D))
            t0 = R * u / np.linalg.norm(u, axis=1, keepdims=True)
        else:
            t0 = np.broadcast_to(np.asarray(theta0, dtype=np.float64), (k, D)).copy()
        inside = np.sum(M * t0 * t0, axis=1) <= 1.0
        norms = np.where(inside, np.linalg.norm(g, axis=1), 0.0)
        if (~inside).any():
            norms[~inside] = _cone_projection_norms(g[~inside], M, t0[~inside])
        sq.append(norms ** 2)
        nm.append(norms)
        gg.append(np.sum(g * g, axis=1))
    r2 = r ** 2
    sq_all = np.concatenate(sq)
    stat = _mc(sq_all)
    # Var(V) from whichever of C and its polar has the smaller χ² noise (‖Π_C° g‖² = ‖g‖² − ‖Π_C g‖²)
    side = sq_all if stat.mean <= D / 2 else np.concatenate(gg) - sq_all
    var_v = float(np.var(side, ddof=1) - 2 * side.mean()) if len(side) > 1 else 0.0
    if stat.mean > D / 2:  # control variate E‖g‖² = D: δ = D − E‖Π_C° g‖², far less noisy here
        polar = _mc(side)
        stat = MCEstimate(D - polar.mean, polar.stderr, polar.n)
    small = float(np.sum(r2) / R ** 2) if float(r.max()) <= SMALL_FORM_MAX_RATIO * R else None
    return ProjectedWidth(D, epsilon, R, stat, _mc(np.concatenate(nm)), small, var_v, capped)


# ------------------------------------------------------------------------------ predictions

def gordon_success_bound(d: int, D: int, w: float) -> float:
    """Gordon's escape theorem as an upper bound on P_s(d): a random d-dimensional subspace misses
    a set of width w with probability ≥ 1 − 3.5·exp(−(a_{D−d} − w)²/18) when a_{D−d} > w."""
    a = chi_mean(D - d)
    if a <= w:
        return 1.0
    return min(1.0, 3.5 * math.exp(-((a - w) ** 2) / 18))


def kinematic_success_bounds(d: int, D: int, stat_dim: float) -> tuple[float, float]:
    """Bounds (lo, hi) on P(d-dim random subspace meets C) from the approximate kinematic formula:
    the smallest η with d + δ ≥ D + a_η√D gives lo = 1 − η; the smallest η with
    d + δ ≤ D − a_η√D gives hi = η."""
    x = (d + stat_dim - D) / math.sqrt(D)
    eta = 4 * math.exp(-(x * x) / 8)  # a_η = |x|  ⇔  η = 4 exp(−x²/8)
    eta = min(1.0, eta)
    return (1 - eta, 1.0) if x > 0 else (0.0, eta)


@dataclass(frozen=True)
class DStarPrediction:
    d_star: float        # D − δ + ½ + z_{1−δs}·σ_V: where P_s ≈ Φ((d − D + δ − ½)/σ_V) reaches 1 − δs
    lo: float            # D − δ: the median crossing (σ_V → 0)
    hi: float            # with σ_V at its bound √(2 min(δ, D − δ)) for one cone (McCoy & Tropp),
                         # or the measured σ_V where larger (θ0's direction varies across seeds)
    rigorous_lo: float   # the kinematic formula's guarantees: P_s < 1 − δs below,
    rigorous_hi: float   # P_s ≥ 1 − δs above
    gordon_lo: float     # Gordon's escape theorem: P_s < 1 − δs below


def predict_d_star(D: int, stat_dim: float, delta: float = 0.1, intrinsic_sd: float | None = None) -> DStarPrediction:
    """d*_theory(ε) for a cone of statistical dimension δ = ``stat_dim`` (≈ w²) and the suite's δs
    = ``delta``. P(a random d-dim subspace meets C) ≈ P(V ≥ D − d + 1) with V the cone's
    intrinsic-volume index (mean δ, sd σ_V): normal approximation for the point, the variance bound
    for ``hi``; the rigorous interval [D − δ − a_{1−δs}√D, D − δ + a_{δs}√D] and Gordon's bound
    D − (w + √(18 log(3.5/(1−δs))))² (w = √δ) are wider. All clipped to [0, D]."""
    z = _normal_quantile(1 - delta)
    center = D - stat_dim
    sd = intrinsic_sd if intrinsic_sd is not None else 0.0
    bound = math.sqrt(2 * max(0.0, min(stat_dim, D - stat_dim)))

    def clip(x: float) -> float:
        return min(float(D), max(0.0, x))

    w = math.sqrt(max(stat_dim, 0.0))
    return DStarPrediction(
        clip(center + 0.5 + z * sd), clip(center), clip(center + 0.5 + z * max(sd, bound)),
        clip(center - alamt_a(1 - delta) * math.sqrt(D)), clip(center + alamt_a(delta) * math.sqrt(D)),
        clip(D - (w + math.sqrt(18 * math.log(3.5 / (1 - delta)))) ** 2))


def predicted_success(d: float, D: int, stat_dim: float, intrinsic_sd: float) -> float:
    """P_s(d) ≈ Φ((d − D + δ − ½)/σ_V) (a step at D − δ + ½ when σ_V = 0)."""
    x = d - D + stat_dim - 0.5
    if intrinsic_sd <= 0:
        return 1.0 if x >= 0 else 0.0
    return 0.5 * math.erfc(-x / (intrinsic_sd * math.sqrt(2)))


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


# ------------------------------------------------------------------------ quadratic-well spectra

def spectrum(kind: str, D: int, *, k: int = 0, lambda_k: float = 1.0, lambda_rest: float = 1e-3,
             lambda_max: float = 1.0, alpha: float = 1.0) -> np.ndarray:
    """Eigenvalues of H: 'bimodal' (k eigenvalues λ_k, D − k eigenvalues λ_rest), 'power-law'
    (λ_i = λ_max·i^(−α), i = 1..D) or 'flat' (all λ_max)."""
    if kind == "bimodal":
        if not 0 <= k <= D:
            raise DofbenchError(f"k: must be between 0 and D={D} (got {k})")
        return np.concatenate([np.full(k, lambda_k), np.full(D - k, lambda_rest)]).astype(np.float64)
    if kind == "power-law":
        return lambda_max * np.arange(1, D + 1, dtype=np.float64) ** (-alpha)
    if kind == "flat":
        return np.full(D, lambda_max, dtype=np.float64)
    raise DofbenchError(f"spectrum: unknown kind {kind!r}; allowed: bimodal, power-law, flat")


def subspace_min_loss(eigenvalues: np.ndarray, theta0: np.ndarray, A: np.ndarray) -> float:
    """min_φ ½ (θ0 + Aφ)ᵀ H (θ0 + Aφ) for diagonal H: the best any optimizer can do in span(A)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    HA = lam[:, None] * A
    G = A.T @ HA
    b = HA.T @ theta0
    phi = np.linalg.lstsq(G, -b, rcond=None)[0]
    th = theta0 + A @ phi
    return float(0.5 * np.sum(lam * th * th))


def exact_success_probability(eigenvalues: np.ndarray, epsilon: float, R: float, d: int, n: int = 100,
                              seed: int | np.random.Generator | None = 0) -> MCEstimate:
    """P(min over a random d-dim subspace through θ0 ≤ ε) by sampling subspaces: the geometric
    P_s of a perfect optimizer (O(n·D·d²); for checking the trainer and the theory)."""
    rng = _rng(seed)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    D = len(lam)
    hits = []
    for _ in range(n):
        u = rng.standard_normal(D)
        A = rng.standard_normal((D, d))
        hits.append(subspace_min_loss(lam, R * u / np.linalg.norm(u), A) <= epsilon)
    return _mc(np.asarray(hits, dtype=np.float64))
