"""Threshold statistics: confidence intervals of P_s(d, ε), an interval for d*, Li et al.'s d_int90.

The store computes the same quantities in SQL (views ``success`` and ``leaderboard``, migration
2); these functions are the reference implementations and what the adaptive search uses.

- P_s interval: Wilson score interval (the SQL views) or Clopper–Pearson (exact, conservative).
- d* = min{d : P̂_s(d) ≥ 1 − δ} on the grid (methods.md §6). Its interval assumes P_s increases
  with d: ``d_star_lo`` = the smallest d whose P_s interval reaches 1 − δ (below it P_s < 1 − δ
  at the chosen confidence), ``d_star_hi`` = the smallest d whose whole interval is ≥ 1 − δ
  (None: not confirmed on the grid with the seeds run).
- d_int90 (Li et al. 2018): the smallest d whose mean accuracy exceeds 0.9 × the mean accuracy
  of full training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

DEFAULT_CONFIDENCE = 0.95
"""Two-sided confidence level of the P_s intervals when a suite does not set one."""

D_INT_FRACTION = 0.9
"""Li et al.'s d_int90: the fraction of the full-training baseline to exceed."""


def z_value(confidence: float) -> float:
    """Two-sided normal quantile: z with P(|Z| ≤ z) = confidence."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    z = z_value(confidence)
    z2 = z * z
    center = (successes + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(successes * (n - successes) / n + z2 / 4)
    lo = 0.0 if successes <= 0 else max(0.0, center - half)
    hi = 1.0 if successes >= n else min(1.0, center + half)
    return lo, hi


def clopper_pearson_interval(successes: int, n: int,
                             confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of a binomial proportion; (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import beta

    alpha = 1 - confidence
    lo = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    hi = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return lo, hi


INTERVALS = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}


@dataclass(frozen=True)
class DStar:
    """d* on a grid with its interval (None where the grid does not reach it)."""

    d_star: int | None
    d_star_lo: int | None
    d_star_hi: int | None


def d_star_interval(counts: Mapping[int, tuple[int, int]], delta: float,
                    confidence: float = DEFAULT_CONFIDENCE, method: str = "wilson") -> DStar:
    """d* and its interval from {d: (successes, n)} (see the module docstring)."""
    interval = INTERVALS[method]
    target = 1 - delta
    star = lo = hi = None
    for d in sorted(counts):
        k, n = counts[d]
        if n <= 0:
            continue
        p_lo, p_hi = interval(k, n, confidence)
        if star is None and k >= target * n - 1e-9:
            star = d
        if lo is None and p_hi >= target:
            lo = d
        if hi is None and p_lo >= target:
            hi = d
    return DStar(star, lo, hi)


def d_int90(mean_metric: Mapping[int, float], baseline: float, fraction: float = D_INT_FRACTION) -> int | None:
    """Smallest d whose mean metric exceeds ``fraction`` × the full-training ``baseline``."""
    for d in sorted(mean_metric):
        v = mean_metric[d]
        if v is not None and math.isfinite(v) and v > fraction * baseline:
            return d
    return None
