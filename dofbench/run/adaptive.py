"""Adaptive search for d*: run seeds only where they decide the grid's answer.

For each (model, dataset, method) of a suite and each ε, bisect the (sorted) d grid. At a probed d
the grid's verdict is "at least ⌈(1 − δ)·n⌉ of the n usable seeds succeed" (success:
:func:`dofbench.results.stats.succeeded`; a diverged seed is a usable failure; a failed trial is no
evidence and its seed does not count there; a d with fewer usable seeds than ``min_seeds`` is not
eligible and leaves the bisection). Seeds are added in the suite's order, so the trials are the
grid's own; one trial informs every ε, and trials already stored are reused.

- **Nested subspaces** (the method declares ``nested``): per seed, success is monotone in d, so a
  seed that succeeded at d succeeds at every larger d and one that failed fails at every smaller
  one. Every seed's outcome at a probed d is then known from its trials at other d's or run, and
  seeds are run only until the verdict is certain (curtailment). No model of the metric: whenever
  per-seed success is monotone, d* is exactly the grid's (the order statistic of the seeds' first
  successful dimensions), and the brackets of those dimensions give d*'s interval.
  ``search.refine`` goes on until every seed's first-success dimension d_s is one integer d (trials
  at d between grid points): the empirical w² of the ``angular_dimension`` table (Crofton).
- **Independent subspaces**: no inference across d. Besides curtailment a verdict is accepted when
  the Beta–Binomial posterior predictive (Jeffreys prior on P_s, from the success indicators of the
  seeds run so far) gives it probability ≥ ``confidence``. It can then differ from the grid: with
  probability up to 1 − confidence per decided d, and wherever the grid's P̂_s is not monotone in d
  (the bisection finds a crossing, the grid the first one).

Both assume that a trial not run would not fail (error): the grid would see such a d as
ineligible. The answer, d*(ε) = the smallest d judged above, goes to the store's ``searches``
table with the seeds it rests on, and to the leaderboard (``estimator = 'adaptive'``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from dofbench.config.identity import canonical_json
from dofbench.config.schemas import TrialSpec
from dofbench.results.stats import succeeded
from dofbench.run.resolve import ResolvedSuite

ABOVE, BELOW, INELIGIBLE = 1, -1, 2
OK, FAIL, UNKNOWN, NO_EVIDENCE = "ok", "fail", "unknown", "none"


def beta_binomial_sf(need: int, remaining: int, successes: int, failures: int, prior: float = 0.5) -> float:
    """P(at least ``need`` successes among ``remaining`` seeds) under the Beta–Binomial posterior
    predictive of ``successes``/``failures`` so far (Beta(prior, prior) on P_s: Jeffreys)."""
    if need <= 0:
        return 1.0
    if need > remaining:
        return 0.0
    from scipy.stats import betabinom

    return float(betabinom.sf(need - 1, remaining, successes + prior, failures + prior))


@dataclass
class Verdict:
    """The grid's verdict at one (d, ε) as far as the seeds known so far settle it."""

    decision: int                  # ABOVE, BELOW, INELIGIBLE or 0 (undecided)
    successes: int
    usable: int                    # seeds whose outcome is known (observed or inferred)
    to_run: list[int]              # seeds that could still be run there


@dataclass
class GroupSearch:
    """The bisection of one (model, dataset, method) group over its d grid, for every ε."""

    key: tuple
    dims: list[int]
    seeds: list[int]
    epsilons: list[float]
    delta: float
    higher_is_better: bool
    trials: dict[tuple[int, int], TrialSpec]
    nested: bool = False
    confidence: float = 0.95
    min_seeds: int | None = None
    initial_seeds: int = 2
    refine: bool = False
    values: dict[tuple[int, int], tuple[str, float | None]] = field(default_factory=dict)  # (d, seed) → (status, metric)
    failed: set[tuple[int, int]] = field(default_factory=set)
    candidates: dict[float, list[int]] = field(default_factory=dict)
    lo: dict[float, int] = field(default_factory=dict)
    hi: dict[float, int] = field(default_factory=dict)
    dropped: dict[float, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for e in self.epsilons:
            self.candidates[e] = list(self.dims)
            self.lo[e], self.hi[e] = -1, len(self.dims)
            self.dropped[e] = 0

    # ------------------------------------------------------------------ evidence
    @property
    def required_seeds(self) -> int:
        return self.min_seeds or len(self.seeds)

    def outcome(self, d: int, s: int, e: float) -> str:
        """OK / FAIL (observed or, nested, inferred from the seed's other trials), UNKNOWN (not run
        yet) or NO_EVIDENCE (its trial failed)."""
        if (d, s) in self.values:
            status, v = self.values[(d, s)]
            return OK if succeeded(status, v, e, self.higher_is_better) else FAIL
        if (d, s) in self.failed:
            return NO_EVIDENCE
        if self.nested:
            for (d2, s2), (status, v) in self.values.items():
                if s2 != s:
                    continue
                ok = succeeded(status, v, e, self.higher_is_better)
                if ok and d2 <= d:
                    return OK
                if not ok and d2 >= d:
                    return FAIL
        return UNKNOWN

    def verdict(self, d: int, e: float) -> Verdict:
        known = {s: self.outcome(d, s, e) for s in self.seeds}
        k = sum(o == OK for o in known.values())
        f = sum(o == FAIL for o in known.values())
        unknown = [s for s, o in known.items() if o == UNKNOWN]
        n_final = k + f + len(unknown)                    # usable seeds once the unknown ones ran
        if n_final < self.required_seeds:
            return Verdict(INELIGIBLE, k, k + f, [])
        need = math.ceil((1 - self.delta) * n_final - 1e-9)
        if k >= need:
            return Verdict(ABOVE, k, k + f, unknown)
        if k + len(unknown) < need:
            return Verdict(BELOW, k, k + f, unknown)
        if not self.nested and k + f > 0:                 # the success indicators' posterior predictive
            p = beta_binomial_sf(need - k, len(unknown), k, f)
            if p >= self.confidence:
                return Verdict(ABOVE, k, k + f, unknown)
            if p <= 1 - self.confidence:
                return Verdict(BELOW, k, k + f, unknown)
        return Verdict(0, k, k + f, unknown)

    def _batch(self, d: int, v: Verdict, e: float) -> list[int]:
        """Seeds to run next at an undecided d: nested, at most ``initial_seeds`` per round (one
        failure settles "below", so fewer at a time is cheaper and more at a time is faster);
        independent, ``initial_seeds`` before the first verdict can be estimated, then one."""
        n_final = v.usable + len(v.to_run)
        need = math.ceil((1 - self.delta) * n_final - 1e-9) - v.successes
        if self.nested:
            return v.to_run[:max(1, min(self.initial_seeds, need))]
        first = self.initial_seeds if v.usable == 0 else 1
        return v.to_run[:max(1, min(first, need))]

    # ------------------------------------------------------------------ requests
    def requests(self) -> list[TrialSpec]:
        """Advance every ε's bisection as far as the evidence allows; return the trials needed next."""
        wanted: dict[str, TrialSpec] = {}
        for e in self.epsilons:
            while self.hi[e] - self.lo[e] > 1:
                dims = self.candidates[e]
                i = (self.lo[e] + self.hi[e]) // 2
                d = dims[i]
                v = self.verdict(d, e)
                if v.decision == ABOVE:
                    self.hi[e] = i
                elif v.decision == BELOW:
                    self.lo[e] = i
                elif v.decision == INELIGIBLE:           # never d*: leaves the bisection
                    dims.pop(i)
                    self.hi[e] -= 1
                    self.dropped[e] += 1
                else:
                    for s in self._batch(d, v, e):
                        t = self.trials[(d, s)]
                        wanted[t.trial_id] = t
                    break
        if not wanted and self.refine and self.nested:
            for t in self.refinements():
                wanted[t.trial_id] = t
        return list(wanted.values())

    def refinements(self) -> list[TrialSpec]:
        """Nested, ``refine``: the next trial of each seed whose first-success dimension is not yet
        one integer d: bisect its bracket (d_below, d_first] on the grid, then between integers."""
        out: dict[str, TrialSpec] = {}
        template = next(iter(self.trials.values()))
        for s in self.seeds:
            for e in self.epsilons:
                below, first = self.bracket(s, e)
                if first is None:
                    if below >= self.dims[-1]:
                        continue                          # never succeeded on the grid: censored
                    grid = [d for d in self.dims if d > below]
                    d = grid[len(grid) // 2]
                elif first - below <= 1:
                    continue                              # exact
                else:
                    grid = [d for d in self.dims if below < d < first]
                    d = grid[len(grid) // 2] if grid else (below + first) // 2
                if (d, s) in self.failed:
                    continue                              # no evidence there: leave the bracket as it is
                t = self.trials.get((d, s)) or template.model_copy(update={"d": d, "seed": s})
                self.trials[(d, s)] = t
                out[t.trial_id] = t
                break                                     # one trial per seed per round (it informs every ε)
        return list(out.values())

    def bracket(self, s: int, e: float) -> tuple[int, int | None]:
        """(d_below, d_first) of seed ``s`` at ε from its observed trials: its smallest successful d
        (None: none) and the largest d below it where it failed (0: none)."""
        obs = [(d, succeeded(st, v, e, self.higher_is_better)) for (d, s2), (st, v) in self.values.items() if s2 == s]
        first = min((d for d, ok in obs if ok), default=None)
        below = max((d for d, ok in obs if not ok and (first is None or d < first)), default=0)
        return below, first

    # ------------------------------------------------------------------ answers
    def d_star(self, e: float) -> int | None:
        dims = self.candidates[e]
        return dims[self.hi[e]] if self.hi[e] < len(dims) else None

    def n_seeds(self, e: float) -> int | None:
        """The usable seeds (observed or inferred) d* rests on."""
        d = self.d_star(e)
        return None if d is None else self.verdict(d, e).usable

    def complete(self, e: float) -> bool:
        """Whether every d the search judged had enough usable seeds."""
        return self.dropped[e] == 0


def group_key(t: TrialSpec) -> tuple:
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
        by_group: dict[tuple, dict[tuple[int, int], TrialSpec]] = defaultdict(dict)
        nested_groups: set[tuple] = set()
        for t in suite.trials:
            if t.seed in seeds:
                by_group[group_key(t)][(t.d, t.seed)] = t
                if t.trial_id in suite.nested:
                    nested_groups.add(group_key(t))
        min_seeds = min(th.min_seeds, len(seeds)) if th.min_seeds else None
        self.searches = [
            GroupSearch(key, sorted({d for d, _ in trials}), seeds, list(th.epsilons), th.delta, suite.higher_is_better,
                        trials, nested=key in nested_groups, confidence=search.confidence, min_seeds=min_seeds,
                        initial_seeds=search.initial_seeds, refine=search.refine)
            for key, trials in by_group.items()]
        self._owner: dict[str, GroupSearch] = {}
        self.requested: list[str] = []   # every trial asked for, in order: the suite's membership
        self.specs: dict[str, TrialSpec] = {}
        self.steps = 0                   # optimizer steps of those trials (run or reused)

    def next_trials(self) -> list[TrialSpec]:
        wanted = []
        for g in self.searches:
            for t in g.requests():
                self._owner[t.trial_id] = g
                wanted.append(t)
        known = set(self.requested)
        for t in wanted:
            if t.trial_id not in known:
                self.requested.append(t.trial_id)
                self.specs[t.trial_id] = t
                known.add(t.trial_id)
        return wanted

    def groups(self, trials: list[TrialSpec]) -> list[list[TrialSpec]]:
        return [[t] for t in trials]

    def observe(self, spec: TrialSpec, outcome) -> None:
        self.steps += _absorb(self._owner[spec.trial_id], spec, outcome, self.suite.metric)

    def members(self) -> list[str]:
        return self.requested

    def member_specs(self) -> dict[str, TrialSpec]:
        """The specs of the trials asked for (some at d between grid points, with ``refine``)."""
        return self.specs

    def answers(self) -> dict[tuple, dict[float, int | None]]:
        """d*(ε) decided for each group key (model, model params, dataset, dataset params, method,
        method params)."""
        return {g.key: {e: g.d_star(e) for e in g.epsilons} for g in self.searches}

    def finish(self, store) -> None:
        rows = [[*g.key, float(e), g.d_star(e), g.n_seeds(e), g.complete(e),
                 "nested: per-seed monotone inference" if g.nested else "independent: Beta-Binomial stopping"]
                for g in self.searches for e in g.epsilons]
        store.write_searches(self.suite.name, self.suite.spec.threshold.metric, rows, trials=len(self.requested),
                             steps=self.steps)


def _absorb(g: GroupSearch, t: TrialSpec, result, metric: str) -> int:
    """Record a trial's outcome (a TrialResult or a StoredTrial: status, metrics, steps)."""
    key = (t.d, t.seed)
    if result.status == "failed":
        g.failed.add(key)
    else:
        v = (result.metrics or {}).get(metric)
        g.values[key] = (result.status, None if v is None or not math.isfinite(float(v)) else float(v))
    return int(result.steps or 0)
