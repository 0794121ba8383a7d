"""The local quadratic model of a trained network and the prediction of d*(ε) it implies — only
where it holds (methods.md §7 applied to real networks).

Near a trained point θ_T, L(θ) ≈ L_T + gᵀΔ + ½ ΔᵀHΔ (Δ = θ − θ_T, g the gradient, H the Hessian,
both by torch.func). The gradient is kept: the model's minimum is θ* = θ_T − H⁺g with
L* = L_T − ½ gᵀH⁺g (H⁺ on the curvature above the floor, from Lanczos started at g), and its
sub-level set at ε is the ellipsoid of semi-axes r_i = √(2(ε − L*)/λ_i) around θ*, seen from θ0 at
distance R = ‖θ0 − θ*‖. The prediction is made only when the model can be trusted, and otherwise
reported as not applicable with the reason:

1. **a minimum**: the spectral weight of negative curvature (stochastic Lanczos quadrature over
   several random probes) is at most :data:`MAX_NEGATIVE_MASS`, and so is the share of ‖g‖² along
   flat or negative curvature; the Newton step ‖H⁺g‖ stays inside the trust radius;
2. **a trust radius** ρ verified against the actual loss: along random directions u and along the
   Newton step, the model L_T + t gᵀu + ½ t² uᵀHu must match L(θ_T + t u) within
   :data:`TRUST_TOLERANCE` of the level ε − L* for every t ≤ ρ. Semi-axes longer than ρ are cut to
   ρ (the set is then the model's only where the model was checked, and the predicted d* an upper
   bound); if more than :data:`MAX_CAPPED` of them are cut the model does not describe S(ε) at all:
   not applicable, with the bound in the reason;
3. the spectrum for the width is the quadrature density averaged over the probes (quantiles of its
   distribution function), not one probe's Ritz values replicated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.func import grad, jvp

from dofbench.engine.data import DataBundle
from dofbench.engine.flat import FlatNet

MAX_NEGATIVE_MASS = 0.05
"""At most this share of the Hessian's spectral weight may be negative for θ_T to count as a minimum."""
NEGATIVE_TOL = 1e-3
"""Ritz values below −this × the largest one count as negative curvature."""
TRUST_TOLERANCE = 0.25
"""The model may miss the actual loss by at most this fraction of the level ε − L* inside ρ."""
TRUST_DIRECTIONS = 8
"""Random directions along which the model is checked against the actual loss."""
MAX_CAPPED = 0.5
"""If more than this share of the semi-axes reach past the trust radius, the model does not describe
the sub-level set: not applicable (the reason gives the bound from the part it was checked on)."""
TRUST_REACH = 4.0
"""The model is checked out to this many times ‖θ0 − θ_T‖ (the trust radius is at most that far)."""


def full_loss_fn(net: FlatNet, data: DataBundle, loss_fn: Callable, max_examples: int | None = 4096
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """θ ↦ training loss on (the first ``max_examples`` of) the training set."""
    x, y = data.x_train, data.y_train
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    return lambda theta: loss_fn(net.forward(theta, x), y)


def hvp_fn(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ H(θ) v by forward-over-reverse differentiation (torch.func.jvp of torch.func.grad)."""
    g = grad(f)
    theta = theta.detach()
    return lambda v: jvp(g, (theta,), (v,))[1]


@dataclass(frozen=True)
class LanczosResult:
    ritz: np.ndarray      # Ritz values (ascending)
    weights: np.ndarray   # quadrature weights (sum to 1)
    D: int
    T: np.ndarray | None = field(default=None, repr=False)   # the tridiagonal matrix
    Q: torch.Tensor | None = field(default=None, repr=False)  # the Lanczos vectors (rows)

    def spectrum(self, floor: float) -> np.ndarray:
        """D eigenvalues: each Ritz value repeated ≈ D·weight times (at least once), clamped to
        ≥ ``floor`` (one probe's quadrature; :func:`quadrature_spectrum` averages several)."""
        counts = np.maximum(1, np.round(self.weights * self.D)).astype(int)
        lam = np.repeat(self.ritz, counts)
        if len(lam) > self.D:  # drop from the bulk (the middle), keep the extremes
            lam = np.sort(lam)
            excess = len(lam) - self.D
            mid = len(lam) // 2
            lam = np.concatenate([lam[: mid - excess // 2 - excess % 2], lam[mid + excess // 2:]])
        elif len(lam) < self.D:
            lam = np.concatenate([lam, np.full(self.D - len(lam), np.median(lam))])
        return np.maximum(np.sort(lam)[::-1], floor)

    def negative_mass(self, tol: float = NEGATIVE_TOL) -> float:
        top = max(float(np.abs(self.ritz).max()), 1e-30)
        return float(self.weights[self.ritz < -tol * top].sum())


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], D: int, k: int, *, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
            start: torch.Tensor | None = None) -> LanczosResult:
    """k steps of Lanczos with full reorthogonalisation from a random unit vector (or ``start``)."""
    k = min(k, D)
    Q = torch.zeros(k, D, dtype=dtype, device=device)
    alpha = np.zeros(k)
    beta = np.zeros(k)
    q = start.detach().to(device=device, dtype=dtype).clone() if start is not None else \
        torch.randn(D, generator=generator, dtype=dtype).to(device)
    q = q / q.norm()
    m = k
    for j in range(k):
        Q[j] = q
        w = matvec(q)
        alpha[j] = float(w @ q)
        w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)      # full reorthogonalisation (twice is enough)
        w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        b = float(w.norm())
        if j + 1 < k:
            beta[j] = b
            # an invariant subspace is found (e.g. H has few distinct eigenvalues): stop, relative to
            # the scale of T and the working precision (an absolute 1e-10 lets float32 noise through)
            scale = max(abs(alpha[j]), beta[j - 1] if j else 0.0, 1e-30)
            if b <= 1e3 * torch.finfo(dtype).eps * scale:
                m = j + 1
                break
            q = w / b
    T = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    vals, vecs = np.linalg.eigh(T)
    return LanczosResult(vals, vecs[0] ** 2, D, T, Q[:m])


def quadrature_spectrum(runs: list[LanczosResult], D: int, floor: float) -> np.ndarray:
    """D eigenvalues as the (i − ½)/D quantiles of the spectral density averaged over several
    probes' quadratures (stochastic Lanczos quadrature), clamped to ≥ ``floor``, descending."""
    nodes = np.concatenate([r.ritz for r in runs])
    weights = np.concatenate([r.weights for r in runs]) / len(runs)
    order = np.argsort(nodes)
    nodes, cdf = nodes[order], np.cumsum(weights[order])
    cdf /= cdf[-1]
    q = (np.arange(D) + 0.5) / D
    lam = nodes[np.minimum(np.searchsorted(cdf, q), len(nodes) - 1)]
    return np.maximum(np.sort(lam)[::-1], floor)


@dataclass(frozen=True)
class LocalQuadratic:
    """The local quadratic model at θ_T and what its gates measured."""

    loss: float                 # L(θ_T)
    grad_norm: float            # ‖g‖
    R_T: float                  # ‖θ0 − θ_T‖
    probes: list[LanczosResult]
    negative_mass: float        # mean over probes of the spectral weight below −tol·λ_max
    lambda_max: float
    newton_decrease: float | None   # ½ gᵀH⁺g over the positive curvature along g
    newton_step: float | None       # ‖H⁺g‖
    R: float | None                 # ‖θ0 − θ*‖
    floor: float
    # the model checked against the actual loss: for each direction, (t, actual − L_T, model − L_T)
    checks: list[list[tuple[float, float, float]]] = field(default_factory=list, repr=False)
    D: int = 0
    gradient_flat_share: float = 0.0  # share of ‖g‖² along flat or negative curvature (no minimum there)

    @property
    def minimum_loss(self) -> float | None:
        return None if self.newton_decrease is None else self.loss - self.newton_decrease

    def eigenvalues(self) -> np.ndarray:
        return quadrature_spectrum(self.probes, self.D, self.floor)

    def trust_radius(self, level: float) -> float:
        """The largest distance t checked (at most TRUST_REACH·‖θ0 − θ_T‖) such that along every direction, for
        every t' ≤ t, the model is within TRUST_TOLERANCE·level of the actual loss (0 if it misses
        at the smallest t)."""
        radius = math.inf
        for check in self.checks:
            ok = 0.0
            for t, actual, model in check:
                if abs(actual - model) > TRUST_TOLERANCE * level:
                    break
                ok = t
            radius = min(radius, ok)
        return radius if math.isfinite(radius) else 0.0


def local_quadratic(net: FlatNet, theta0: torch.Tensor, theta_T: torch.Tensor, data: DataBundle,
                    loss_fn: Callable, *, k: int = 64, probes: int = 4, floor_ratio: float = 1e-6, seed: int = 0,
                    max_examples: int | None = 4096, radii: int = 14) -> LocalQuadratic:
    """Measure the local quadratic model at θ_T on the full-batch training loss: the gradient,
    ``probes`` Lanczos runs of ``k`` steps from random vectors (the spectral density, negative
    curvature), one from g (the Newton step), and the model against the actual loss along
    :data:`TRUST_DIRECTIONS` random directions and the Newton step at ``radii`` log-spaced distances
    up to max(:data:`TRUST_REACH`·‖θ0 − θ_T‖, the step)."""
    f = full_loss_fn(net, data, loss_fn, max_examples)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    theta_T = theta_T.detach()
    D = theta_T.numel()
    with torch.no_grad():
        loss = float(f(theta_T))
    g = grad(f)(theta_T).detach()
    gnorm = float(g.norm())
    hv = hvp_fn(f, theta_T)
    runs = [lanczos(hv, D, k, generator=gen, device=theta_T.device, dtype=theta_T.dtype) for _ in range(max(1, probes))]
    top = float(max(max(r.ritz.max() for r in runs), 1e-12))
    neg = float(np.mean([r.negative_mass() for r in runs]))
    # the Newton step from a Krylov space started at g: g's spectral weights w_j on the Ritz pairs
    # (θ_j, v_j) of T; the step uses the positive-curvature pairs, and the weight of g on flat or
    # negative curvature (where the model has no minimum) is measured
    decrease = step = None
    flat_share = 0.0
    R = float((theta0 - theta_T).norm())
    if gnorm > 0:
        kr = lanczos(hv, D, k, device=theta_T.device, dtype=theta_T.dtype, start=g)
        vals, vecs = np.linalg.eigh(kr.T)
        w = vecs[0] ** 2
        pos = vals > floor_ratio * top          # curvature above the floor: the model has a minimum there
        flat_share = float(w[~pos].sum())
        y = gnorm * (vecs[:, pos] @ (vecs[0, pos] / vals[pos]))  # H⁻¹g ≈ Q_kᵀ y on the positive part
        decrease = 0.5 * gnorm * float(y[0])
        delta = -(kr.Q.T @ torch.as_tensor(y, dtype=theta_T.dtype, device=theta_T.device))
        step = float(delta.norm())
        R = float((theta0 - (theta_T + delta)).norm())
    else:
        decrease, step = 0.0, 0.0
    # the model against the actual loss along random directions and along the Newton step
    R_T = max(float((theta0 - theta_T).norm()), 1e-6)
    reach = max(TRUST_REACH * R_T, step or 0.0)
    ts = np.geomspace(reach * 1e-3, reach, radii)
    dirs = []
    for _ in range(TRUST_DIRECTIONS):
        u = torch.randn(D, generator=gen, dtype=theta_T.dtype).to(theta_T.device)
        dirs.append(u / u.norm())
    if step:
        dirs.append(delta / delta.norm())
    checks = []
    with torch.no_grad():
        for u in dirs:
            gu = float(g @ u)
            uhu = float(hv(u) @ u)
            check = []
            for t in ts:
                actual = float(f(theta_T + float(t) * u)) - loss
                check.append((float(t), actual, float(t) * gu + 0.5 * float(t) ** 2 * uhu))
            checks.append(check)
    return LocalQuadratic(loss, gnorm, R_T, runs, neg, top, decrease, step, R,
                          floor_ratio * top, checks, D, flat_share)


@dataclass(frozen=True)
class HessianPrediction:
    """The local-quadratic prediction at one loss level ε, or why there is none."""

    epsilon: float
    status: str                 # 'ok' | 'not applicable'
    reason: str | None
    w2: float | None = None
    w2_se: float | None = None
    w2_sd: float | None = None
    d_star: float | None = None
    lo: float | None = None
    hi: float | None = None
    trust_radius: float | None = None
    capped: float | None = None


def quadratic_d_star(lq: LocalQuadratic, epsilons: list[float], delta: float = 0.1, samples: int = 200,
                     seed: int = 0) -> list[HessianPrediction]:
    """The gated local-quadratic prediction of d*(ε) for each loss level ε (module docstring)."""
    from dofbench.analysis.theory import predict_d_star, projected_width

    out = []
    for eps in epsilons:
        def na(reason: str) -> HessianPrediction:
            return HessianPrediction(eps, "not applicable", reason)

        if lq.negative_mass > MAX_NEGATIVE_MASS:
            out.append(na(f"θ_T is not a minimum: {lq.negative_mass:.2%} of the Hessian's spectral weight is "
                          f"negative (at most {MAX_NEGATIVE_MASS:.0%} allowed)"))
            continue
        if lq.gradient_flat_share > MAX_NEGATIVE_MASS:
            out.append(na(f"θ_T is not near a minimum: {lq.gradient_flat_share:.2%} of the squared gradient lies "
                          f"along flat or negative curvature, where the quadratic model has no minimum (at most "
                          f"{MAX_NEGATIVE_MASS:.0%} allowed; ‖g‖ = {lq.grad_norm:.3g})"))
            continue
        L_star = lq.loss - lq.newton_decrease
        level = eps - L_star
        if level <= 0:
            out.append(na(f"ε = {eps:g} is below the local model's minimum loss {L_star:.4g}"))
            continue
        rho = lq.trust_radius(level)
        if rho <= 0:
            out.append(na(f"the quadratic model misses the actual loss by more than {TRUST_TOLERANCE:.0%} of "
                          f"ε − L* = {level:.3g} at every distance checked"))
            continue
        if lq.newton_step is not None and lq.newton_step > rho:
            out.append(na(f"θ_T is not near a minimum: the model's minimum is {lq.newton_step:.3g} away, beyond "
                          f"the trust radius {rho:.3g} verified against the actual loss"))
            continue
        cap = rho
        lam = lq.eigenvalues()
        pw = projected_width(lam, level, lq.R, n=samples, seed=seed, cap=cap)
        # the spread of the spectral sum Σ min(r_i, ρ)² over the probes: the quadrature's share of the error
        sums = []
        for r in lq.probes:
            ri = np.sqrt(2 * level / np.maximum(r.ritz, lq.floor))
            if cap is not None:
                ri = np.minimum(ri, cap)
            sums.append(lq.D * float(np.sum(r.weights * ri ** 2)))
        rel = float(np.std(sums, ddof=1) / np.mean(sums)) / math.sqrt(len(sums)) if len(sums) > 1 else 0.0
        se = math.hypot(pw.statistical_dimension.stderr, rel * pw.w2)
        pred = predict_d_star(len(lam), pw.w2, delta, pw.intrinsic_sd)
        if pw.capped > MAX_CAPPED:
            out.append(na(f"the sub-level set at ε reaches past the trust radius {rho:.3g} (verified against the actual "
                          f"loss) in {pw.capped:.0%} of directions: the local quadratic model does not describe it "
                          f"(from the part it was checked on only w² ≥ {pw.w2:.1f}, d* ≤ {pred.d_star:.0f})"))
            continue
        reason = None
        if pw.capped > 0:
            reason = (f"semi-axes cut at the trust radius {rho:.3g} in {pw.capped:.0%} of directions: "
                      "d* predicted from the part of the sub-level set the model was checked on (an upper bound)")
        out.append(HessianPrediction(eps, "ok", reason, pw.w2, se, pw.intrinsic_sd, pred.d_star, pred.lo, pred.hi,
                                     rho, pw.capped))
    return out
