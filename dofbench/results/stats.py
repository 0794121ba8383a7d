"""Threshold statistics: the one definition of success, confidence intervals of P_s(d, ε),
Li et al.'s d_int90.

The store computes the same quantities in SQL (views ``trial_values``, ``success`` and
``leaderboard``); these functions are the reference implementations and what the adaptive search
uses. d*'s interval is :mod:`dofbench.results.intervals`.

- Success (:func:`succeeded`): the trial trained to the end and its metric reaches ε; a diverged
  trial is never a success.
- P_s interval: Clopper–Pearson (the views, through the ``binomial_intervals`` table): its
  coverage is at least the nominal level for every P_s and n. Wilson's is kept for comparison: it
  undercovers with few seeds (91.9 % at n = 5, P_s = 0.9, for a 95 % interval).
- d_int90 (Li et al. 2018): the smallest d whose mean accuracy exceeds 0.9 × the mean accuracy
  of full training.
"""

from __future__ import annotations

import math
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


def clopper_pearson_table(n_max: int, confidence: float = DEFAULT_CONFIDENCE, start: int = 1
                          ) -> tuple[list[int], list[int], list[float], list[float]]:
    """(n, k, lo, hi) of the Clopper–Pearson interval for every 0 ≤ k ≤ n, start ≤ n ≤ n_max, as
    four lists (the store's ``binomial_intervals``, which the ``success`` view joins)."""
    import numpy as np
    from scipy.stats import beta

    pairs = [(n, k) for n in range(max(1, start), n_max + 1) for k in range(n + 1)]
    ns = np.array([p[0] for p in pairs], dtype=int)
    ks = np.array([p[1] for p in pairs], dtype=int)
    alpha = 1 - confidence
    with np.errstate(all="ignore"):
        lo = np.where(ks == 0, 0.0, beta.ppf(alpha / 2, np.maximum(ks, 1), ns - ks + 1))
        hi = np.where(ks == ns, 1.0, beta.ppf(1 - alpha / 2, ks + 1, np.maximum(ns - ks, 1)))
    return ns.tolist(), ks.tolist(), [float(x) for x in lo], [float(x) for x in hi]


def succeeded(status: str | None, value: float | None, epsilon: float, higher_is_better: bool) -> bool:
    """The one definition of a successful trial at level ε (also the views' ``success``): it trained
    to the end (status 'ok' — a diverged trial never succeeds, whatever its last finite evaluation
    said) and its metric reaches ε (≥ ε for accuracies, ≤ ε for losses)."""
    if status != "ok" or value is None or not math.isfinite(value):
        return False
    return value >= epsilon if higher_is_better else value <= epsilon


INTERVALS = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}


def d_int90(mean_metric: Mapping[int, float], baseline: float, fraction: float = D_INT_FRACTION) -> int | None:
    """Smallest d whose mean metric exceeds ``fraction`` × the full-training ``baseline``."""
    for d in sorted(mean_metric):
        v = mean_metric[d]
        if v is not None and math.isfinite(v) and v > fraction * baseline:
            return d
    return None
