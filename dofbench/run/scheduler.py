"""The runner: resolve suites, skip what is stored, run the rest through an executor, and let the
driver alone write each finished trial."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dofbench.errors import DofbenchError
from dofbench.plugin.executor import Executor
from dofbench.run.host import Host
from dofbench.config.identity import canonical_json
from dofbench.config.schemas import ResolvedComponent, TrialSpec
from dofbench.results.store import Store
from dofbench.run.resolve import ResolvedSuite
from dofbench.config.runtime import Runtime
from dofbench.engine.result import TrialResult
from dofbench.engine.worker import resolve_device


class Budget(BaseModel):
    """A per-suite budget: when it is reached no new trial starts; trials already running finish
    and are stored, and the same command later runs what is left."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_trials: int | None = Field(None, ge=1, description="Start at most this many trials per suite "
                                   "(a batched group is split at the limit).")
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
    errors: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.ok + self.failed + self.diverged

    def line(self) -> str:
        text = (f"suite {self.suite}: {self.total} trials, {self.skipped} already stored, ran {self.ran} "
                f"({self.ok} ok, {self.diverged} diverged, {self.failed} failed) in {self.wall_s:.1f}s")
        if self.budget:
            text += f"; {self.budget} reached, {self.not_run} trials left for a later run"
        if self.interrupted:
            text += (f" — interrupted ({self.signal or 'SIGINT'}): {self.lost} in flight dropped, "
                     f"{self.not_run} not started; rerun the same command to finish")
        return text


def group_trials(trials: list[TrialSpec], host: Host, sizes: dict[str, int] | None = None,
                 device: str = "cpu") -> list[list[TrialSpec]]:
    """Groups of trials an executor runs together: trials that differ only in seed are trained
    together (:mod:`dofbench.batched`) where it pays — both the model and the method say
    ``batchable`` — in groups of at most the method's ``group_limit`` for that D, d and
    ``device`` ('cpu' or 'cuda'; at most :data:`dofbench.batched.MAX_GROUP`), split into groups
    of even sizes. ``sizes`` maps :func:`task_key` of a (model, dataset) to its D; without it,
    the limit is MAX_GROUP. Every other trial is a group of its own. Groups come in order of
    their first trial."""
    from dofbench.engine.loop import MAX_GROUP

    members: dict[str, list[TrialSpec]] = {}
    limits: dict[str, int] = {}
    for i, t in enumerate(trials):
        key, limit = f"single:{i}", 1
        try:
            model, method = host.get("model", t.model.name), host.get("method", t.method.name)
            params = method.parse_params(t.method.params)
            if model.batchable(model.parse_params(t.model.params)) and method.batchable(params):
                D = (sizes or {}).get(task_key(t.model, t.dataset))
                limit = MAX_GROUP if D is None else method.group_limit(params, D, t.d, device)
                key = canonical_json({**t.model_dump(mode="json", exclude={"identity"}), "seed": None})
        except Exception:  # an unknown component fails later, in its own trial
            pass
        limits.setdefault(key, max(1, min(MAX_GROUP, int(limit))))
        members.setdefault(key, []).append(t)
    out = []
    for key, group in members.items():  # as few groups as the limit allows, of even sizes
        n = -(-len(group) // limits[key])
        out.extend(group[j::n] for j in range(n))
    return out


def task_key(model: ResolvedComponent, dataset: ResolvedComponent) -> str:
    """The key of a (model, dataset) pair in :func:`group_trials`'s ``sizes``."""
    return canonical_json([model.model_dump(mode="json"), dataset.model_dump(mode="json")])


def executor_for(name: str, host: Host, runtime: Runtime, workers: int | None,
                 options: dict[str, Any] | None = None) -> Executor:
    factory = host.get("executor", name, where="--executor")
    return factory.create(host, runtime, workers=workers, options=options or {})


def preflight(suite: ResolvedSuite, host: Host, runtime: Runtime) -> None:
    """Fail before any training when a suite's data are missing."""
    seen = set()
    for task in suite.tasks:
        key = (task.dataset.name, str(task.dataset.params))
        if key in seen:
            continue
        seen.add(key)
        comp = host.get("dataset", task.dataset.name)
        comp.check_available(comp.parse_params(task.dataset.params), data_root=runtime.data_root,
                             download=runtime.download)


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


def run_suite(suite: ResolvedSuite, *, host: Host, store: Store, runtime: Runtime,
              executor: Executor, force: bool = False, retry_failed: bool = False,
              source: str = "", progress: bool = True,
              on_result: Callable[[TrialResult], None] | None = None,
              budget: Budget | None = None) -> SuiteSummary:
    """Run a suite's missing trials through ``executor``; the driver writes each result as it
    arrives. Ctrl-C/SIGTERM stop cleanly (in-flight trials dropped, stored ones kept), a crashed
    worker fails its trials and the run goes on, and ``budget`` limits what starts."""
    summary = SuiteSummary(suite.name, total=len(suite.trials))
    t0 = time.perf_counter()
    budget = budget or Budget()
    preflight(suite, host, runtime)
    ids = [t.trial_id for t in suite.trials]
    th = suite.spec.threshold
    store.register_suite(suite.name, suite.spec.description, suite.resolved_json(), source, ids,
                         th.metric, th.epsilons, th.delta, suite.higher_is_better,
                         specs=suite.trial_specs_json())
    skip_status = ("ok", "diverged") if retry_failed else ("ok", "diverged", "failed")
    done = set() if force else store.done_ids(ids, skip_status)
    todo = [t for t in dict((t.trial_id, t) for t in suite.trials).values() if t.trial_id not in done]
    summary.skipped = len(set(ids)) - len(todo)
    summary.total = len(set(ids))
    sizes = {task_key(task.model, task.dataset): task.total_params for task in suite.tasks}
    groups = group_trials(todo, host, sizes, resolve_device(runtime.device).type)
    bar = _progress(len(todo), suite.name, progress)
    in_flight: dict[Future, list[TrialSpec]] = {}
    queue = list(reversed(groups))
    started = 0
    submitting: list[TrialSpec] = []
    deadline = t0 + budget.time_s if budget.time_s else None
    with _StopSignals() as stop:
        try:
            while queue or in_flight:
                while queue and len(in_flight) < max(1, executor.max_in_flight) and not summary.budget:
                    if budget.max_trials is not None and started >= budget.max_trials:
                        summary.budget = f"trial budget {budget.max_trials}"
                    elif deadline is not None and time.perf_counter() >= deadline:
                        summary.budget = f"time budget {budget.time_s:g}s"
                    else:
                        submitting = queue.pop()  # the local executor runs it inside submit()
                        room = None if budget.max_trials is None else budget.max_trials - started
                        if room is not None and len(submitting) > room:  # at most N: split the group
                            queue.append(submitting[room:])
                            submitting = submitting[:room]
                        in_flight[executor.submit(submitting)] = submitting
                        started += len(submitting)
                        submitting = []
                if not in_flight:
                    break
                finished, _ = wait(list(in_flight), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in finished:
                    for result in group_results(fut, in_flight.pop(fut)):
                        with stop.deferred():  # a signal now waits until the trial is committed
                            store.write_result(result, suite.name)
                            status = result.status
                            setattr(summary, status, getattr(summary, status) + 1)
                            if status == "failed":
                                summary.errors.append(f"{result.trial_id[:12]}: {result.error}")
                        if on_result:
                            on_result(result)
                        bar.update(1)
        except KeyboardInterrupt as exc:
            stop.stopping()
            summary.interrupted = True
            summary.signal = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
            summary.lost = sum(len(g) for g in in_flight.values()) + len(submitting)
            for fut in in_flight:
                fut.cancel()
            executor.close(cancel=True)
        finally:
            bar.close()
    summary.not_run = sum(len(g) for g in queue)
    summary.wall_s = time.perf_counter() - t0
    return summary


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or total == 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="trial", leave=False)
