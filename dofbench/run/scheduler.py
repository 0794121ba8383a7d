"""The one scheduler: every suite, grid or adaptive, runs through :class:`Scheduler`.

A :class:`Strategy` decides *what* to run — the grid (:mod:`dofbench.run.grid`) asks for every
trial once, the adaptive search (:mod:`dofbench.run.adaptive`) asks round after round for the
trials that decide d* — and the scheduler decides *how*: it reuses trials already stored, submits
the rest to the executor (at most ``max_in_flight`` groups at a time), lets the driver alone commit
each result as it arrives (a SIGINT/SIGTERM that comes during a commit waits for it), enforces the
budgets, draws the progress bar and keeps the :class:`SuiteSummary`.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dofbench.config.runtime import Runtime
from dofbench.config.schemas import TrialSpec
from dofbench.engine.result import TrialResult, now
from dofbench.errors import DofbenchError, ExecutorLost
from dofbench.plugin.executor import Executor
from dofbench.results import intervals
from dofbench.results.store import Store
from dofbench.run.adaptive import AdaptiveStrategy, group_key
from dofbench.run.grid import GridStrategy
from dofbench.run.host import Host
from dofbench.run.resolve import ResolvedSuite


HEARTBEAT_S = 10.0   # a driver renews its claims this often while trials run
CLAIM_POLL_S = 2.0   # a driver waiting for another's claimed trials looks again this often


class Budget(BaseModel):
    """A per-suite budget: when it is reached no new trial starts; trials already running finish
    and are stored, and the same command later runs what is left."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_trials: int | None = Field(None, ge=1, description="Start at most this many trials per suite, "
                                   "in whole groups of seeds (a group that would pass the limit waits).")
    time_s: float | None = Field(None, gt=0, description="Start no new trial after this many seconds "
                                 "of a suite's run.")

    @classmethod
    def of(cls, max_trials: int | None = None, time_s: float | None = None) -> "Budget":
        try:
            return cls(max_trials=max_trials, time_s=time_s)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = {"max_trials": "--max-trials", "time_s": "--time-budget"}.get(str(err["loc"][0]), err["loc"][0])
            raise DofbenchError(f"{name}: {err['msg'].lower()} (got {err.get('input')!r})") from None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class SuiteSummary:
    suite: str
    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    diverged: int = 0
    wall_s: float = 0.0
    interrupted: bool = False
    signal: str | None = None      # SIGINT / SIGTERM when interrupted
    lost: int = 0                  # trials in flight when interrupted (not stored; rerun runs them)
    not_run: int = 0               # trials left unstarted by a budget or an interruption
    budget: str | None = None      # which budget stopped the suite
    lost_executor: str | None = None  # why the executor could not go on (ExecutorLost)
    errors: list[str] = field(default_factory=list)
    compute_s: float = 0.0         # summed wall_s of the trials run (the compute; ≥ wall_s with workers)
    started_at: str = ""

    @property
    def ran(self) -> int:
        return self.ok + self.failed + self.diverged

    @property
    def complete(self) -> bool:
        """Whether the strategy ran to its end (no budget, no interruption, no lost executor)."""
        return not (self.interrupted or self.budget or self.lost_executor)

    @property
    def stopped(self) -> bool:
        """Whether the run stopped early (a signal or a lost executor): later suites do not start."""
        return self.interrupted or bool(self.lost_executor)

    def count(self, result: TrialResult) -> None:
        setattr(self, result.status, getattr(self, result.status) + 1)
        self.compute_s += result.wall_s or 0.0
        if result.status == "failed":
            self.errors.append(f"{result.trial_id[:12]}: {result.error}")

    def failure_lines(self, width: int = 160) -> list[str]:
        """Each distinct error of the failed trials once: how many trials, an example id, its
        first line (``dofbench show trial ID`` prints the rest)."""
        groups: dict[str, list[str]] = {}
        for entry in self.errors:
            tid, _, error = entry.partition(": ")
            groups.setdefault(error, []).append(tid)
        out = []
        for error, ids in groups.items():
            text = error if len(error) <= width else error[:width - 1] + "…"
            out.append(f"{len(ids)} failed ({text}); e.g. `dofbench show trial {ids[0]}`")
        return out

    def line(self) -> str:
        text = (f"suite {self.suite}: {self.total} trials, {self.skipped} already stored, ran {self.ran} "
                f"({self.ok} ok, {self.diverged} diverged, {self.failed} failed) in {self.wall_s:.1f}s")
        if self.budget:
            text += f"; {self.budget} reached, {self.not_run} trials left for a later run"
        if self.interrupted:
            text += (f" — interrupted ({self.signal or 'SIGINT'}): {self.lost} in flight dropped, "
                     f"{self.not_run} not started; rerun the same command to finish")
        if self.lost_executor:
            text += (f" — stopped: {self.lost_executor}; {self.lost} in flight dropped, {self.not_run} not "
                     "started; rerun the same command to finish")
        return text


class Strategy(Protocol):
    """What to run for a suite. The scheduler asks :meth:`next_trials` until it returns nothing,
    reports every outcome to :meth:`observe` (a trial just run, or one already stored), and calls
    :meth:`finish` once the strategy has run to its end."""

    def next_trials(self) -> list[TrialSpec]:
        """The trials wanted next (the scheduler runs them all before asking again); [] = done."""

    def groups(self, trials: list[TrialSpec]) -> list[list[TrialSpec]]:
        """How to submit ``trials`` (the wanted ones not stored yet): groups an executor runs
        together (a group of seeds may be trained in one stack)."""

    def observe(self, spec: TrialSpec, outcome: Any) -> None:
        """A trial's outcome: a :class:`TrialResult`, or the stored trial (status, metrics, steps)."""

    def members(self) -> list[str]:
        """The ids of the trials that belong to the suite so far (its membership in the store)."""

    def member_specs(self) -> dict[str, TrialSpec]:
        """The specs of members that are not trials of the suite's grid (e.g. the adaptive search's
        trials at d between grid points), by id."""

    def finish(self, store: Store) -> None:
        """Write what the strategy decided (e.g. the adaptive search's d*)."""


class _StopSignals:
    """Turn SIGINT/SIGTERM into :class:`Interrupted` in the main thread, but never inside a store
    write: a signal that arrives while a trial is being committed is raised right after it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if first and not self._deferring:
            raise Interrupted(signum)

    def stopping(self) -> None:
        """From here on (cleanup) further signals are only recorded."""
        self._deferring = True

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.signum is not None:
            raise Interrupted(self.signum)


def group_results(fut: Future, group: list[TrialSpec]) -> list[TrialResult]:
    """A finished future's results; a group whose worker crashed or whose executor failed comes
    back as failed trials carrying the reason."""
    try:
        return fut.result()
    except CancelledError:
        return []
    except Exception as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        if exc.__class__.__name__ not in reason:
            reason = f"{exc.__class__.__name__}: {reason}"
        return [TrialResult.stopped(t, "failed", reason) for t in group]


def preflight(suite: ResolvedSuite, host: Host, runtime: Runtime) -> None:
    """Fail before any training (and before anything is stored) when a suite's data cannot be had:
    each dataset is prepared once (downloaded now when ``--download`` allows, else checked)."""
    seen = set()
    for task in suite.tasks:
        key = (task.dataset.name, str(task.dataset.params))
        if key in seen:
            continue
        seen.add(key)
        comp = host.get("dataset", task.dataset.name)
        comp.prepare(comp.parse_params(task.dataset.params), data_root=runtime.data_root, download=runtime.download)


def executor_for(name: str, host: Host, runtime: Runtime, workers: int | None,
                 options: dict[str, Any] | None = None) -> Executor:
    """The executor plugin ``name`` (see ``dofbench list executors``), created for this run."""
    factory = host.get("executor", name, where="--executor")
    return factory.create(host, runtime, workers=workers, options=options or {})


def strategy_for(suite: ResolvedSuite, host: Host, device: str = "cpu") -> Strategy:
    """The strategy a suite's ``search.strategy`` names: the grid or the adaptive search."""
    if suite.spec.search.strategy == "adaptive":
        return AdaptiveStrategy(suite)
    return GridStrategy(suite, host, device)


class Scheduler:
    """Runs suites through one executor and one store (see the module docstring).

    ``force`` reruns trials already stored; ``retry_failed`` reruns those stored as failed (they are
    reused otherwise); ``budget`` limits what each suite starts; ``on_result`` sees every result
    after it is committed."""

    def __init__(self, store: Store, executor: Executor, *, force: bool = False, retry_failed: bool = False,
                 budget: Budget | None = None, progress: bool = True, source: str = "",
                 on_result: Callable[[TrialResult], None] | None = None):
        self.store, self.executor = store, executor
        self.force, self.budget, self.progress, self.source = force, budget or Budget(), progress, source
        self.reuse = ("ok", "diverged") if retry_failed else ("ok", "diverged", "failed")
        self.on_result = on_result
        # who this driver is in the store's claims (two drivers on one store share the work)
        self.owner = store.claim_owner()

    def run(self, suite: ResolvedSuite, strategy: Strategy) -> SuiteSummary:
        """Run ``suite`` as ``strategy`` says; return its summary. Ctrl-C/SIGTERM stop cleanly
        (trials in flight dropped, stored ones kept; the executor is closed), a crashed worker
        fails its trials and the run goes on."""
        run = _Run(self, suite, strategy)
        with _StopSignals() as stop:
            try:
                run.register()
                while not run.summary.budget:
                    wanted = list({t.trial_id: t for t in strategy.next_trials()}.values())
                    if not wanted:
                        break
                    todo = run.reuse_stored(wanted)
                    if todo:
                        run.execute(strategy.groups(todo), todo, stop)
                    run.register()
            except KeyboardInterrupt as exc:
                stop.stopping()
                run.interrupted(exc)
            except ExecutorLost as exc:
                run.executor_lost(exc)
            finally:
                run.bar.close()
                try:
                    self.store.release_claims(self.owner)
                except Exception:  # claims expire by themselves
                    pass
        summary = run.summary
        summary.total = len(set(strategy.members()))
        summary.wall_s = time.perf_counter() - run.t0
        if summary.complete:
            strategy.finish(self.store)
        if summary.ran or summary.skipped:
            intervals.refresh(self.store, suite.name)  # d*'s interval from what is stored now
        if summary.ran or summary.lost:
            self.store.write_run(suite.name, started_at=summary.started_at, finished_at=now(), wall_s=summary.wall_s,
                                 executor=getattr(self.executor, "name", "?"),
                                 workers=getattr(self.executor, "workers", None), trials=summary.total,
                                 skipped=summary.skipped, ok=summary.ok, diverged=summary.diverged,
                                 failed=summary.failed, compute_s=summary.compute_s,
                                 stopped=summary.budget or summary.signal or summary.lost_executor)
        return summary


class _Run:
    """The state of one suite's run: what is in flight, what started, the summary."""

    def __init__(self, scheduler: Scheduler, suite: ResolvedSuite, strategy: Strategy):
        self.s, self.suite, self.strategy = scheduler, suite, strategy
        self.summary = SuiteSummary(suite.name, started_at=now())
        self.t0 = time.perf_counter()
        budget = scheduler.budget
        self.deadline = self.t0 + budget.time_s if budget.time_s else None
        self.started = 0
        self.in_flight: dict[Future, list[TrialSpec]] = {}
        self.queue: list[list[TrialSpec]] = []
        self.submitting: list[TrialSpec] = []
        self.registered: list[str] | None = None
        self.todo_ids: set[str] = set()  # trials this run is to store (wanted, not stored)
        self.beat = time.monotonic()
        self.bar = _progress(suite.name, scheduler.progress)

    def register(self) -> None:
        """Write the suite's definition and membership when it changed."""
        members = list(dict.fromkeys(self.strategy.members()))
        if members == self.registered:
            return
        th = self.suite.spec.threshold
        specs, nested, yardsticks = self.suite.trial_specs_json(), set(self.suite.nested), set(self.suite.yardsticks)
        extra = self.strategy.member_specs()  # trials a strategy asked for beyond the grid (d between its points)
        if extra:
            nested_groups = {group_key(t) for t in self.suite.trials if t.trial_id in self.suite.nested}
            yard_groups = {group_key(t) for t in self.suite.trials if t.trial_id in self.suite.yardsticks}
            specs.update({i: t.model_dump(mode="json") for i, t in extra.items()})
            nested |= {i for i, t in extra.items() if group_key(t) in nested_groups}
            yardsticks |= {i for i, t in extra.items() if group_key(t) in yard_groups}
        self.s.store.register_suite(self.suite.name, self.suite.spec.description, self.suite.resolved_json(),
                                    self.s.source, members, th.metric, th.epsilons, th.delta,
                                    self.suite.higher_is_better, specs=specs,
                                    baselines=self.suite.baselines, yardsticks=yardsticks, nested=nested)
        self.registered = members

    def reuse_stored(self, wanted: list[TrialSpec]) -> list[TrialSpec]:
        """Hand the stored outcomes of ``wanted`` to the strategy; return the trials left to run."""
        stored = {} if self.s.force else self.s.store.stored_trials([t.trial_id for t in wanted], self.s.reuse)
        todo = []
        for t in wanted:
            if t.trial_id in stored:
                self.summary.skipped += 1
                self.strategy.observe(t, stored[t.trial_id])
            else:
                todo.append(t)
        return todo

    def execute(self, groups: list[list[TrialSpec]], todo: list[TrialSpec], stop: _StopSignals) -> None:
        """Run the trials ``todo`` in ``groups`` (whole groups: a group may hold stored trials,
        which are trained again with it but not stored again, so that a trial's result never
        depends on what else was stored when it ran), at most ``max_in_flight`` groups pending,
        within the budget, each group claimed in the store first (another driver on the same store
        skips it); every result is committed as it arrives."""
        ex, summary, budget = self.s.executor, self.summary, self.s.budget
        self.todo_ids |= {t.trial_id for t in todo}
        self.queue = list(reversed(groups))
        deferred: list[list[TrialSpec]] = []  # claimed by another driver: waited for at the end
        self.bar.grow(len(todo))
        while self.queue or self.in_flight or deferred:
            while self.queue and len(self.in_flight) < max(1, ex.max_in_flight) and not summary.budget:
                group = self.queue[-1]
                new = sum(t.trial_id in self.todo_ids for t in group)
                if budget.max_trials is not None and self.started + new > budget.max_trials:
                    summary.budget = f"trial budget {budget.max_trials}"
                elif self.deadline is not None and time.perf_counter() >= self.deadline:
                    summary.budget = f"time budget {budget.time_s:g}s"
                elif not self._claim(group):
                    deferred.append(self.queue.pop())
                elif not any(t.trial_id in self.todo_ids for t in group):  # all stored by another driver meanwhile
                    self.queue.pop()
                else:
                    self.submitting = self.queue.pop()  # the local executor runs it inside submit()
                    self.in_flight[ex.submit(self.submitting)] = self.submitting
                    self.started += new
                    self.submitting = []
            if not self.in_flight:
                if not deferred or summary.budget:
                    break
                self.queue = self._still_wanted(deferred)  # stored by the other driver meanwhile, or theirs expired
                deferred = []
                if self.queue:
                    time.sleep(CLAIM_POLL_S)
                continue
            finished, _ = wait(list(self.in_flight), timeout=1.0, return_when=FIRST_COMPLETED)
            self._heartbeat()
            if not finished:
                ex.check()  # a cluster without workers says so (ExecutorLost) instead of waiting for ever
            for fut in finished:
                self._commit(fut, stop)
        summary.not_run += sum(sum(t.trial_id in self.todo_ids for t in g) for g in self.queue + deferred)
        self.queue = []

    def _commit(self, fut: Future, stop: _StopSignals | None) -> None:
        """Store the results of a finished group (those of the trials this run is to store), in
        one transaction."""
        group = self.in_flight.pop(fut)
        first: dict[str, TrialResult] = {}  # each trial once, as it first comes back
        for r in group_results(fut, group):
            if r.trial_id in self.todo_ids:
                first.setdefault(r.trial_id, r)
        results = list(first.values())
        if stop is None:
            self.s.store.write_results(results, self.suite.name, release=self.s.owner)
        else:
            with stop.deferred():  # a signal now waits until the group is committed
                self.s.store.write_results(results, self.suite.name, release=self.s.owner)
        for result in results:
            self.summary.count(result)
            self.todo_ids.discard(result.trial_id)
            self.strategy.observe(result.spec, result)
            if self.s.on_result:
                self.s.on_result(result)
            self.bar.update(1)

    def _claim(self, group: list[TrialSpec]) -> bool:
        """Claim a group; what another driver stored of it meanwhile is reused, not trained again."""
        claimed, stored = self.s.store.claim_trials([t.trial_id for t in group], self.s.owner,
                                                    () if self.s.force else self.s.reuse)
        for t in group:
            if t.trial_id in stored and t.trial_id in self.todo_ids:
                self.todo_ids.discard(t.trial_id)
                self.summary.skipped += 1
                self.strategy.observe(t, stored[t.trial_id])
                self.bar.update(1)
        return claimed

    def _still_wanted(self, groups: list[list[TrialSpec]]) -> list[list[TrialSpec]]:
        """The deferred groups that still have trials to run (the others' trials now stored are reused)."""
        ids = [t.trial_id for g in groups for t in g if t.trial_id in self.todo_ids]
        stored = self.s.store.stored_trials(ids, self.s.reuse) if ids else {}
        for g in groups:
            for t in g:
                if t.trial_id in stored and t.trial_id in self.todo_ids:
                    self.todo_ids.discard(t.trial_id)
                    self.summary.skipped += 1
                    self.strategy.observe(t, stored[t.trial_id])
                    self.bar.update(1)
        return [g for g in groups if any(t.trial_id in self.todo_ids for t in g)]

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self.beat >= HEARTBEAT_S:
            self.s.store.heartbeat(self.s.owner)
            self.beat = now

    def interrupted(self, exc: BaseException) -> None:
        """Ctrl-C / SIGTERM: stop (see :meth:`stop`)."""
        self.summary.interrupted = True
        self.summary.signal = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
        self.stop()

    def executor_lost(self, exc: ExecutorLost) -> None:
        """The executor cannot go on: stop (see :meth:`stop`) and say why."""
        self.summary.lost_executor = " ".join(str(exc).split())
        self.stop()

    def stop(self) -> None:
        """Store what already finished (it is work done), drop what is running, count both."""
        summary = self.summary
        for fut in [f for f in self.in_flight if f.done() and not f.cancelled()]:
            try:
                self._commit(fut, None)
            except Exception:  # the store itself failing while stopping: what is stored stays
                break
        summary.lost = sum(sum(t.trial_id in self.todo_ids for t in g) for g in self.in_flight.values()) + \
            sum(t.trial_id in self.todo_ids for t in self.submitting)
        summary.not_run += sum(sum(t.trial_id in self.todo_ids for t in g) for g in self.queue)
        for fut in self.in_flight:
            fut.cancel()
        self.s.executor.close(cancel=True)


BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} trials [{elapsed} elapsed, ETA {remaining}]"


class _progress:
    """A tqdm bar on stderr whose total grows as a strategy asks for more trials (or nothing):
    trials done of those wanted so far, the time elapsed and the ETA of the rest at the recent
    rate (an adaptive search may still ask for more)."""

    def __init__(self, desc: str, enabled: bool):
        self.desc, self.enabled, self._bar = desc, enabled, None

    def grow(self, n: int) -> None:
        if not self.enabled or n <= 0:
            return
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=n, desc=self.desc, unit="trial", leave=False, bar_format=BAR_FORMAT,
                             dynamic_ncols=True)
        else:
            self._bar.total += n
            self._bar.refresh()

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
