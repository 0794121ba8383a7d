"""Adaptive search for d*: run seeds only where they decide the answer.

For each (model, dataset, method) of a suite and each ε, bisect the (sorted, typically
log-spaced) d grid, using that P_s(d, ε) increases with d: a d judged "above" (P_s ≥ 1 − δ)
settles every larger d, a d judged "below" every smaller one. At a probed d, seeds are added in
the suite's order (so the trials are the very trials of the grid) until the grid's own decision
there — "at least ⌈(1 − δ)·n⌉ of the n = max_seeds seeds succeed" — is known:

- exactly, once enough successes or failures are in (curtailment), or
- with probability ≥ ``confidence`` under a normal model of the metric across seeds (log of the
  metric for losses), whose spread is pooled over the probed d's: the posterior predictive
  probability that the remaining seeds give the grid's "above".

One trial informs every ε, so the bisections of all ε share their trials; trials already in the
store are reused. The answer, d*(ε) = the smallest d judged above, goes to the store's
``searches`` table and the leaderboard's ``d_star`` (``estimator = 'adaptive'``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from dofbench.config.identity import canonical_json
from dofbench.config.schemas import TrialSpec
from dofbench.run.resolve import ResolvedSuite

ABOVE, BELOW = 1, -1


def _success(value: float | None, eps: float, higher: bool) -> bool:
    return value is not None and (value >= eps if higher else value <= eps)


@dataclass
class PointDecider:
    """Decides, from the seeds run so far, the grid's verdict at one d for one ε."""

    n_max: int
    delta: float
    confidence: float
    higher_is_better: bool
    draws: int = 4000

    @property
    def required(self) -> int:
        return math.ceil((1 - self.delta) * self.n_max - 1e-9)

    def transform(self, values: list[float]) -> np.ndarray | None:
        x = np.asarray(values, dtype=np.float64)
        if not self.higher_is_better:
            if np.any(x <= 0):
                return None
            return np.log(x)
        return x

    def decide(self, values: list[float | None], eps: float, pooled: tuple[float, int] | None) -> int:
        """ABOVE, BELOW or 0 (undecided). ``values``: the metric of the seeds run (None: diverged);
        ``pooled``: (variance, degrees of freedom) of the transformed metric across d's."""
        k = sum(_success(v, eps, self.higher_is_better) for v in values)
        f = len(values) - k
        if k >= self.required:
            return ABOVE
        if f > self.n_max - self.required:
            return BELOW
        remaining = self.n_max - len(values)
        need = self.required - k
        finite = [v for v in values if v is not None]
        if not finite or pooled is None or pooled[1] < 1 or len(finite) < len(values):
            return 0
        x = self.transform(finite)
        if x is None:
            return 0
        e = self.transform([eps])[0] if (self.higher_is_better or eps > 0) else None
        if e is None:
            return 0
        var, df = pooled
        rng = np.random.default_rng(len(values) * 7919 + df)
        sigma2 = df * max(var, 1e-300) / rng.chisquare(df, self.draws)
        mu = rng.normal(x.mean(), np.sqrt(sigma2 / len(x)))
        from scipy.stats import binom, norm

        z = (mu - e) / np.sqrt(sigma2)
        p = norm.cdf(z if self.higher_is_better else -z)
        p_above = float(np.mean(binom.sf(need - 1, remaining, p)))
        if p_above >= self.confidence:
            return ABOVE
        if p_above <= 1 - self.confidence:
            return BELOW
        return 0


@dataclass
class GroupSearch:
    """The bisection of one (model, dataset, method) group over its d grid, for every ε."""

    key: tuple
    dims: list[int]
    seeds: list[int]
    epsilons: list[float]
    decider: PointDecider
    trials: dict[tuple[int, int], TrialSpec]
    initial_seeds: int = 2
    values: dict[tuple[int, int], float | None] = field(default_factory=dict)  # (d, seed) → metric
    failed: set[tuple[int, int]] = field(default_factory=set)
    lo: dict[float, int] = field(default_factory=dict)
    hi: dict[float, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for e in self.epsilons:
            self.lo[e], self.hi[e] = -1, len(self.dims)

    def observed(self, d: int) -> list[float | None]:
        return [self.values[(d, s)] for s in self.seeds if (d, s) in self.values]

    def pooled(self) -> tuple[float, int] | None:
        ss, df = 0.0, 0
        for d in self.dims:
            vals = [v for v in self.observed(d) if v is not None]
            x = self.decider.transform(vals) if vals else None
            if x is None or len(x) < 2:
                continue
            ss += float(np.sum((x - x.mean()) ** 2))
            df += len(x) - 1
        return (ss / df, df) if df else None

    def requests(self) -> list[TrialSpec]:
        """Advance every ε's bisection as far as the evidence allows; return the trials needed next."""
        pooled = self.pooled()
        wanted: dict[str, TrialSpec] = {}
        for e in self.epsilons:
            while self.hi[e] - self.lo[e] > 1:
                i = (self.lo[e] + self.hi[e]) // 2
                d = self.dims[i]
                verdict = self.decider.decide(self.observed(d), e, pooled)
                if verdict == ABOVE:
                    self.hi[e] = i
                    continue
                if verdict == BELOW:
                    self.lo[e] = i
                    continue
                todo = [s for s in self.seeds if (d, s) not in self.values and (d, s) not in self.failed]
                if not todo:  # every seed ran (some failed): judge by the point estimate
                    vals = self.observed(d)
                    k = sum(_success(v, e, self.decider.higher_is_better) for v in vals)
                    if vals and k >= (1 - self.decider.delta) * len(vals) - 1e-9:
                        self.hi[e] = i
                    else:
                        self.lo[e] = i
                    continue
                first = self.initial_seeds if pooled is None else 1  # the spread is known: one at a time
                n_more = max(1, first - len(self.observed(d)))
                for s in todo[:n_more]:
                    t = self.trials[(d, s)]
                    wanted[t.trial_id] = t
                break
        return list(wanted.values())

    def d_star(self, e: float) -> int | None:
        return self.dims[self.hi[e]] if self.hi[e] < len(self.dims) else None


def _group_key(t: TrialSpec) -> tuple:
    return (t.model.name, canonical_json(t.model.params), t.dataset.name, canonical_json(t.dataset.params),
            t.method.name, canonical_json(t.method.params))


class AdaptiveStrategy:
    """The :class:`~dofbench.run.scheduler.Strategy` of ``search.strategy = "adaptive"``: one
    :class:`GroupSearch` per (model, dataset, method) of the suite; each round asks for the trials
    its bisections need next, one trial per submission. When it has run to its end, the d* it
    decided goes to the store's ``searches`` table (the leaderboard's d* of such a suite)."""

    def __init__(self, suite: ResolvedSuite):
        self.suite = suite
        spec = suite.spec
        search, th = spec.search, spec.threshold
        seeds = spec.seed_list()[: search.max_seeds or None]
        decider = PointDecider(len(seeds), th.delta, search.confidence, suite.higher_is_better)
        by_group: dict[tuple, dict[tuple[int, int], TrialSpec]] = defaultdict(dict)
        for t in suite.trials:
            if t.seed in seeds:
                by_group[_group_key(t)][(t.d, t.seed)] = t
        self.searches = [GroupSearch(key, sorted({d for d, _ in trials}), seeds, list(th.epsilons), decider, trials,
                                     initial_seeds=search.initial_seeds) for key, trials in by_group.items()]
        self._owner: dict[str, GroupSearch] = {}
        self.requested: list[str] = []   # every trial asked for, in order: the suite's membership
        self.steps = 0                   # optimizer steps of those trials (run or reused)

    def next_trials(self) -> list[TrialSpec]:
        wanted = []
        for g in self.searches:
            for t in g.requests():
                self._owner[t.trial_id] = g
                wanted.append(t)
        self.requested.extend(t.trial_id for t in wanted if t.trial_id not in set(self.requested))
        return wanted

    def groups(self, trials: list[TrialSpec]) -> list[list[TrialSpec]]:
        return [[t] for t in trials]

    def observe(self, spec: TrialSpec, outcome) -> None:
        self.steps += _absorb(self._owner[spec.trial_id], spec, outcome, self.suite.metric)

    def members(self) -> list[str]:
        return self.requested

    def answers(self) -> dict[tuple, dict[float, int | None]]:
        """d*(ε) decided for each group key (model, model params, dataset, dataset params, method,
        method params)."""
        return {g.key: {e: g.d_star(e) for e in g.epsilons} for g in self.searches}

    def finish(self, store) -> None:
        rows = [[*key, float(e), d] for key, per_eps in self.answers().items() for e, d in per_eps.items()]
        store.write_searches(self.suite.name, self.suite.spec.threshold.metric, rows, trials=len(self.requested),
                             steps=self.steps)


def _absorb(g: GroupSearch, t: TrialSpec, result, metric: str) -> int:
    """Record a trial's outcome (a TrialResult or a StoredTrial: status, metrics, steps)."""
    key = (t.d, t.seed)
    if result.status == "failed":
        g.failed.add(key)
    elif result.status == "diverged":
        g.values[key] = None
    else:
        v = (result.metrics or {}).get(metric)
        g.values[key] = None if v is None or not math.isfinite(float(v)) else float(v)
    return int(result.steps or 0)
