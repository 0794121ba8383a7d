"""An interval for d* that says something with 5–10 seeds: a monotone fit of P_s in log d with a
profile-likelihood interval.

Why not the P_s intervals alone: with n = 5 seeds even 5/5 successes leave P_s ≥ 0.9 unconfirmed
at 95 % (Clopper–Pearson's lower bound is 0.55), so "the smallest d whose whole P_s interval is
≥ 1 − δ" is unbounded for every real suite. Borrowing strength across d needs a model of how P_s
rises with d; the one used here is the natural one for a phase transition in log d:

    P_s(d) = Φ((log d − μ) / σ),

i.e. the first-success dimension d_s of a seed is log-normal. Its (1 − δ)-quantile
q = μ + z_{1−δ}·σ is the continuous d* (the grid's d* is the smallest grid d ≥ e^q). The interval
is the profile-likelihood set {q : 2(ℓ̂ − max_σ ℓ(q, σ)) ≤ χ²_{1, confidence}}, computed on a
grid of (q, log σ) (vectorised; ~5 % resolution in d). It is finite on both sides whenever the
transition is seen: failures below and successes above it. A side where the data cannot exclude
ever larger (or smaller) q — the profile's best σ runs into its bound there, or the set reaches
the edge of the range searched — is reported as unbounded (None).

The likelihood follows how the subspaces were drawn:

- ``bernoulli`` (independent A per (seed, d)): every trial is an independent Bernoulli(P_s(d)).
- ``first-success`` (nested subspaces, one A per seed): a seed's trials are one observation, the
  bracket (d_below, d_first] of its first-success dimension (interval-censored; d_first = ∞ when
  it never succeeded). Treating its trials as independent would overstate the evidence.

The coverage of this interval is measured by simulation (tests/results/test_intervals.py) and
stated in docs/statistics.md; it is a model-based interval and only as good as the probit fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

Q_POINTS = 480
SIGMA_POINTS = 120
SIGMA_MIN = 0.01
GOODNESS_OF_FIT_P = 0.01
"""Below this p-value of the deviance (independent subspaces) the fit is rejected: no interval."""


@dataclass(frozen=True)
class DStarFit:
    """d* from the fit: the continuous quantile with its interval, and the interval on the grid."""

    d_star_fit: float | None
    fit_lo: float | None      # None: unbounded below
    fit_hi: float | None      # None: unbounded above
    d_star_lo: int | None     # the smallest grid d ≥ fit_lo (the grid's smallest d when unbounded)
    d_star_hi: int | None     # the smallest grid d ≥ fit_hi (None: beyond the grid or unbounded)
    likelihood: str
    note: str | None = None


def _log_ndtr(x: np.ndarray) -> np.ndarray:
    from scipy.special import log_ndtr

    return log_ndtr(x)


def _log_interval_prob(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log(Φ(hi) − Φ(lo)) for lo < hi (either may be ±inf), accurate in both tails."""
    # use the upper tail where both are positive: Φ(hi) − Φ(lo) = Φ(−lo) − Φ(−hi)
    flip = lo > 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    lb, la = _log_ndtr(b), _log_ndtr(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = lb + np.log1p(-np.exp(np.minimum(la - lb, 0.0)))
    return np.where(np.isfinite(out), out, -1e300)


def _loglik_bernoulli(q, ls, z, logd, k, n):
    """ℓ(q, σ) on the grid (Q × S) for counts k of n at log d (each an array of length m)."""
    sigma = np.exp(ls)[None, :, None]
    x = (logd[None, None, :] - q[:, None, None]) / sigma + z
    return np.sum(k * _log_ndtr(x) + (n - k) * _log_ndtr(-x), axis=-1)


def _loglik_brackets(q, ls, z, log_lo, log_hi):
    """ℓ(q, σ) for interval-censored observations log d_s ∈ (log_lo, log_hi] (−inf / +inf open)."""
    sigma = np.exp(ls)[None, :, None]
    a = (log_lo[None, None, :] - q[:, None, None]) / sigma + z
    b = (log_hi[None, None, :] - q[:, None, None]) / sigma + z
    return np.sum(_log_interval_prob(a, b), axis=-1)


def fit_d_star(dims: Sequence[int], delta: float, confidence: float, *,
               counts: Mapping[int, tuple[int, int]] | None = None,
               brackets: Sequence[tuple[float, float]] | None = None, seeds: int | None = None,
               correction: bool = True) -> DStarFit | None:
    """Fit P_s(d) = Φ((log d − μ)/σ) and return d*'s profile-likelihood interval at ``confidence``.

    Give ``counts`` {d: (successes, usable seeds)} (independent subspaces) or ``brackets``, one
    (d_below, d_first) per seed (nested subspaces: d_s ∈ (d_below, d_first], d_below = 0 when no
    smaller d failed, d_first = inf when it never succeeded). ``dims``: the grid. None without data."""
    from scipy.stats import norm

    grid = sorted(int(d) for d in dims)
    if not grid:
        return None
    z = float(norm.ppf(1 - delta))
    lmin, lmax = math.log(grid[0]), math.log(grid[-1])
    span = max(lmax - lmin, math.log(2))
    q = np.linspace(lmin - 2 * span, lmax + 2 * span, Q_POINTS)
    ls = np.linspace(math.log(SIGMA_MIN), math.log(3 * span), SIGMA_POINTS)
    if brackets is not None:
        obs = [(lo, hi) for lo, hi in brackets if hi is not None]
        if not obs:
            return None
        log_lo = np.array([math.log(lo) if lo and lo > 0 else -np.inf for lo, _ in obs])
        log_hi = np.array([math.log(hi) if math.isfinite(hi) else np.inf for _, hi in obs])
        ll = _loglik_brackets(q, ls, z, log_lo, log_hi)
        kind = "first-success"
        none_succeeded = not np.isfinite(log_hi).any()
        all_at_first = bool(np.all(log_hi <= lmin + 1e-12))
    else:
        cells = [(d, k, n) for d, (k, n) in sorted((counts or {}).items()) if n > 0]
        if not cells:
            return None
        logd = np.log(np.array([c[0] for c in cells], dtype=float))
        k = np.array([c[1] for c in cells], dtype=float)
        n = np.array([c[2] for c in cells], dtype=float)
        ll = _loglik_bernoulli(q, ls, z, logd, k, n)
        kind = "bernoulli"
        none_succeeded = k.sum() == 0
        all_at_first = bool(np.all(k == n))
        p_hat = k / n
        with np.errstate(divide="ignore", invalid="ignore"):
            saturated = float(np.sum(np.where(k > 0, k * np.log(p_hat), 0) + np.where(n > k, (n - k) * np.log1p(-p_hat), 0)))
    profile = ll.max(axis=1)
    best_sigma = ll.argmax(axis=1)
    top = profile.max()
    cut = likelihood_cutoff(confidence, seeds if seeds else (len(obs) if brackets is not None else None),
                            correction)
    inside = np.nonzero(profile >= top - cut)[0]
    mle = np.nonzero(profile >= top - 1e-9)[0]
    i_lo, i_hi = int(inside.min()), int(inside.max())
    capped = SIGMA_POINTS - 1
    lo_open = i_lo == 0 or best_sigma[i_lo] == capped
    hi_open = i_hi == len(q) - 1 or best_sigma[i_hi] == capped
    fit_lo = None if lo_open else float(math.exp(q[i_lo]))
    fit_hi = None if hi_open else float(math.exp(q[i_hi]))
    point = float(math.exp((q[int(mle.min())] + q[int(mle.max())]) / 2))
    note = None
    if none_succeeded:
        point, fit_hi, note = None, None, "no seed succeeded on the grid"
    elif all_at_first:
        point, fit_lo, note = None, None, "every seed succeeded at the grid's smallest d"
    elif brackets is None and len(k) > 2:
        from scipy.stats import chi2

        deviance = 2 * (saturated - float(top))
        if chi2.sf(deviance, len(k) - 2) < GOODNESS_OF_FIT_P:
            return DStarFit(None, None, None, None, None, kind,
                            f"P_s is not monotone in log d as the fit assumes (deviance {deviance:.1f} on "
                            f"{len(k) - 2} df): no interval")

    def ceil_grid(x: float) -> int | None:
        return next((d for d in grid if d >= x * (1 - 1e-9)), None)

    d_lo = grid[0] if fit_lo is None else ceil_grid(fit_lo)
    d_hi = None if fit_hi is None else ceil_grid(fit_hi)
    return DStarFit(point, fit_lo, fit_hi, d_lo, d_hi, kind, note)


def likelihood_cutoff(confidence: float, n: int | None, correction: bool = True) -> float:
    """Half the critical value of 2(ℓ̂ − ℓ_p): χ²_1's quantile (Wilks, asymptotic), or with
    ``correction`` and n ≥ 3 seeds the small-sample one n·log(1 + t²_{n−1}/(n−1)) — exact for the
    mean of n normal observations, and what brings the coverage of d*'s interval near its nominal
    level at n = 5–10 (measured in tests/results/test_intervals.py)."""
    from scipy.stats import chi2, t

    if not correction or n is None or n < 3:
        return float(chi2.ppf(confidence, 1)) / 2
    tq = float(t.ppf((1 + confidence) / 2, n - 1))
    return max(float(chi2.ppf(confidence, 1)), n * math.log1p(tq * tq / (n - 1))) / 2


def brackets_of(rows: Sequence[Mapping]) -> list[tuple[float, float]]:
    """(d_below, d_first) per seed from rows of the ``first_success`` view (d_first None → inf)."""
    return [(float(r["d_below"] or 0), float(r["d_first"]) if r["d_first"] is not None else math.inf)
            for r in rows]


@dataclass(frozen=True)
class AngularDimension:
    """The local angular dimension w² measured from the seeds' first-success dimensions d_s.

    Crofton's formula makes the first-success dimension of a nested random subspace meeting a
    convex cone C (not a subspace) satisfy P(d_s ≤ d) = 2·(v_{D−d+1} + v_{D−d+3} + …), v_k the
    cone's intrinsic volumes, hence E[d_s] = D − δ(C) + ½ with δ(C) = E V the statistical
    dimension (= w² up to one). So w² ≈ D + ½ − mean d_s, with a t interval over the seeds. Where
    the d_s are only bracketed (a grid without ``search.refine``) the interval is the bracket's:
    from the mean of the upper ends to the mean of the lower ends, each widened by its t term;
    censored seeds (no success on the grid) leave it unbounded below."""

    seeds: int
    exact: int
    censored: int
    non_monotone: int
    mean_d_s: float | None
    sd_d_s: float | None
    w2: float | None
    w2_lo: float | None
    w2_hi: float | None
    note: str | None = None


def angular_dimension(D: int, brackets: Sequence[tuple[float, float]], confidence: float,
                      non_monotone: int = 0) -> AngularDimension | None:
    """w² = D + ½ − mean d_s and its interval from one (d_below, d_first) per seed (d_first = inf:
    the seed never succeeded). None without seeds."""
    from scipy.stats import t as student

    n = len(brackets)
    if n == 0:
        return None
    lo = np.array([b[0] + 1 for b in brackets], dtype=float)       # d_s ≥ d_below + 1
    hi = np.array([b[1] for b in brackets], dtype=float)           # d_s ≤ d_first
    exact = int(np.sum(hi == lo))
    censored = int(np.sum(~np.isfinite(hi)))
    tq = float(student.ppf((1 + confidence) / 2, n - 1)) if n > 1 else math.inf

    def half(x: np.ndarray) -> float:
        return tq * float(np.std(x, ddof=1)) / math.sqrt(n) if n > 1 else math.inf

    top = D + 0.5
    if exact == n:
        m, sd = float(lo.mean()), float(np.std(lo, ddof=1)) if n > 1 else None
        h = half(lo)
        return AngularDimension(n, exact, 0, non_monotone, m, sd, top - m,
                                top - m - h if math.isfinite(h) else None, top - m + h if math.isfinite(h) else None,
                                None if n > 1 else "one seed: no interval")
    w2_hi = top - float(lo.mean()) + half(lo)
    if censored:
        return AngularDimension(n, exact, censored, non_monotone, None, None, None, None,
                                w2_hi if math.isfinite(w2_hi) else None,
                                f"{censored} of {n} seeds never succeeded on the grid: w² bounded above only")
    w2_lo = top - float(hi.mean()) - half(hi)
    return AngularDimension(n, exact, 0, non_monotone, None, None, None,
                            w2_lo if math.isfinite(w2_lo) else None, w2_hi if math.isfinite(w2_hi) else None,
                            f"{n - exact} of {n} seeds' d_s only bracketed by the grid: bounds only "
                            "(search.refine finds each d_s)")


def refresh(store, suite: str) -> int:
    """Compute d*'s interval for every (task, method, metric, ε) of ``suite`` and, for nested
    subspaces, the empirical angular dimension, from what the store holds now, and write them
    (``d_star_intervals``, ``angular_dimension``); return how many d* intervals."""
    from dofbench.results import queries

    if not store.path.exists():
        return 0
    with store.read() as con:
        groups = queries.interval_inputs(con, suite)
    out, angular = [], []
    for g in groups:
        if g["nested"] and g["seeds"] and g["D"]:
            a = angular_dimension(g["D"], brackets_of(g["seeds"]), g["confidence"],
                                  sum(not r["monotone"] for r in g["seeds"]))
            if a is not None:
                angular.append([*g["key"][:6], g["label"], *g["key"][6:], g["D"], a.seeds, a.exact, a.censored,
                                a.non_monotone, a.mean_d_s, a.sd_d_s, a.w2, a.w2_lo, a.w2_hi, g["confidence"],
                                g["seed_evidence"], a.note])
        dims = [c["d"] for c in g["cells"]]
        if len(dims) < 2:  # one d (e.g. the full-training baseline): no transition to fit
            continue
        if g["nested"]:
            fit = fit_d_star(dims, g["delta"], g["confidence"], brackets=brackets_of(g["seeds"]))
        else:
            fit = fit_d_star(dims, g["delta"], g["confidence"], seeds=max(c["n"] for c in g["cells"]),
                             counts={c["d"]: (c["successes"], c["n"]) for c in g["cells"]})
        if fit is None:
            continue
        out.append([*g["key"], g["evidence"], fit.likelihood, g["confidence"], fit.d_star_fit, fit.fit_lo,
                    fit.fit_hi, fit.d_star_lo, fit.d_star_hi, fit.note])
    store.write_d_star_intervals(suite, out, angular)
    return len(out)
