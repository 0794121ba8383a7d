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
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dofbench.config.identity import canonical_json
from dofbench.config.schemas import SearchConfig, TrialSpec
from dofbench.results.stats import z_value
from dofbench.results.store import Store

ABOVE, BELOW = 1, -1


def record_statistics(store: Store, suite: str, search: SearchConfig) -> None:
    """Write the suite's search strategy and confidence level (used by the success view)."""
    with store.write() as con:
        con.execute("DELETE FROM suite_statistics WHERE suite = ?", [suite])
        con.execute("INSERT INTO suite_statistics VALUES (?, ?, ?, ?)",
                    [suite, search.strategy, search.confidence, z_value(search.confidence)])


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


@dataclass
class SearchResult:
    """What an adaptive search ran and decided."""

    suite: str
    d_star: dict[tuple, dict[float, int | None]]
    trial_ids: list[str]
    steps: int
    trials_run: int
    trials_reused: int
    summary: Any = None


def _group_key(t: TrialSpec) -> tuple:
    return (t.model.name, canonical_json(t.model.params), t.dataset.name, canonical_json(t.dataset.params),
            t.method.name, canonical_json(t.method.params))


def adaptive_search(suite, *, store: Store, executor, force: bool = False, retry_failed: bool = False,
                    source: str = "", on_result: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
    """Run ``suite`` (a :class:`dofbench.suite.ResolvedSuite`) adaptively; write trials, the
    suite's membership and the decided d* to ``store``."""
    from dofbench.run.scheduler import SuiteSummary, group_results

    spec = suite.spec
    search = spec.search
    seeds = spec.seed_list()[: search.max_seeds or None]
    th = spec.threshold
    summary = SuiteSummary(suite.name)
    t0 = time.perf_counter()
    decider = PointDecider(len(seeds), th.delta, search.confidence, suite.higher_is_better)
    by_group: dict[tuple, dict[tuple[int, int], TrialSpec]] = defaultdict(dict)
    for t in suite.trials:
        if t.seed in seeds:
            by_group[_group_key(t)][(t.d, t.seed)] = t
    groups = []
    for key, trials in by_group.items():
        dims = sorted({d for d, _ in trials})
        groups.append(GroupSearch(key, dims, seeds, list(th.epsilons), decider, trials,
                                  initial_seeds=search.initial_seeds))
    requested: list[str] = []
    steps = reused = ran = 0

    specs = suite.trial_specs_json()

    def register() -> None:
        store.register_suite(suite.name, spec.description, suite.resolved_json(), source, requested,
                             th.metric, th.epsilons, th.delta, suite.higher_is_better, specs=specs)

    record_statistics(store, suite.name, search)
    register()
    skip = ("ok", "diverged") if retry_failed else ("ok", "diverged", "failed")
    try:
        while True:
            todo = [(g, t) for g in groups for t in g.requests()]
            if not todo:
                break
            ids = [t.trial_id for _, t in todo]
            requested.extend(i for i in ids if i not in requested)
            stored = {} if force else store.stored_trials(ids, skip)
            queue = []
            for g, t in todo:
                if t.trial_id in stored:
                    reused += 1
                    summary.skipped += 1
                    steps += _absorb(g, t, stored[t.trial_id], suite.metric)
                else:
                    queue.append((g, t))
            # keep at most max_in_flight trials pending and commit each result as it arrives,
            # so an interrupted search loses only the trials in flight
            pending: dict = {}
            while queue or pending:
                while queue and len(pending) < max(1, executor.max_in_flight):
                    g, t = queue.pop(0)
                    pending[executor.submit([t])] = (g, t)
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in finished:
                    g, t = pending.pop(fut)
                    for result in group_results(fut, [t]):
                        store.write_result(result, suite.name)
                        ran += 1
                        status = result.status
                        setattr(summary, status, getattr(summary, status) + 1)
                        if status == "failed":
                            summary.errors.append(f"{result.trial_id[:12]}: {result.error}")
                        steps += _absorb(g, t, result, suite.metric)
                        if on_result:
                            on_result(result)
            register()
    except KeyboardInterrupt:
        summary.interrupted = True
    answers = {g.key: {e: g.d_star(e) for e in th.epsilons} for g in groups}
    if not summary.interrupted:
        _write_searches(store, suite.name, th.metric, groups, answers, steps, len(requested))
    summary.total = len(requested)
    summary.wall_s = time.perf_counter() - t0
    return SearchResult(suite.name, answers, requested, steps, ran, reused, summary)


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


def _write_searches(store: Store, suite: str, metric: str, groups: list[GroupSearch],
                    answers: dict, steps: int, n_trials: int) -> None:
    with store.write() as con:
        con.begin()
        con.execute("DELETE FROM searches WHERE suite = ?", [suite])
        for g in groups:
            model, mparams, dataset, dparams, method, params = g.key
            for e, d in answers[g.key].items():
                con.execute("INSERT INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [suite, model, mparams, dataset, dparams, method, params, metric, float(e), d,
                             n_trials, steps, None])
        con.commit()



