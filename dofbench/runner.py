"""The runner: resolve suites, skip what is stored, run the rest through an executor, and let the
driver alone write each finished trial."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dofbench.errors import DofbenchError
from dofbench.executors import Executor
from dofbench.host import Host
from dofbench.schemas import TrialSpec
from dofbench.store import Store
from dofbench.suite import ResolvedSuite, default_config_path, get_suite, load_suite_file, resolve_suite
from dofbench.worker import Runtime


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
    errors: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.ok + self.failed + self.diverged

    def line(self) -> str:
        text = (f"suite {self.suite}: {self.total} trials, {self.skipped} already stored, ran {self.ran} "
                f"({self.ok} ok, {self.diverged} diverged, {self.failed} failed) in {self.wall_s:.1f}s")
        return text + (" — interrupted" if self.interrupted else "")


def resolve(names: list[str], config: str | Path | None, host: Host) -> list[ResolvedSuite]:
    """Validate every named suite (all of them before anything runs)."""
    suite_file = load_suite_file(config)
    where = str(config) if config else "benchmarks.toml"
    if not names:
        raise DofbenchError(f"no suite named; available in {where}: {', '.join(sorted(suite_file.suites))}")
    return [resolve_suite(host, n, get_suite(suite_file, n, where)) for n in names]


def group_trials(trials: list[TrialSpec], host: Host) -> list[list[TrialSpec]]:
    """Groups of trials an executor runs together (one trial per group)."""
    return [[t] for t in trials]


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


def run_suite(suite: ResolvedSuite, *, host: Host, store: Store, runtime: Runtime,
              executor: Executor, force: bool = False, retry_failed: bool = False,
              source: str = "", progress: bool = True,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> SuiteSummary:
    summary = SuiteSummary(suite.name, total=len(suite.trials))
    t0 = time.perf_counter()
    preflight(suite, host, runtime)
    ids = [t.trial_id for t in suite.trials]
    th = suite.spec.threshold
    store.register_suite(suite.name, suite.spec.description, suite.resolved_json(), source, ids,
                         th.metric, th.epsilons, th.delta, suite.higher_is_better)
    skip_status = ("ok", "diverged") if retry_failed else ("ok", "diverged", "failed")
    done = set() if force else store.done_ids(ids, skip_status)
    todo = [t for t in dict((t.trial_id, t) for t in suite.trials).values() if t.trial_id not in done]
    summary.skipped = len(set(ids)) - len(todo)
    summary.total = len(set(ids))
    groups = group_trials(todo, host)
    bar = _progress(len(todo), suite.name, progress)
    pending: set[Future] = set()
    queue = list(reversed(groups))
    try:
        while queue or pending:
            while queue and len(pending) < max(1, executor.max_in_flight):
                group = queue.pop()
                pending.add(executor.submit([t.model_dump(mode="json") for t in group]))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                for result in fut.result():
                    store.write_result(result, suite.name)
                    status = result["status"]
                    setattr(summary, status, getattr(summary, status) + 1)
                    if status == "failed":
                        summary.errors.append(f"{result['trial_id'][:12]}: {result.get('error')}")
                    if on_result:
                        on_result(result)
                    bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
        for fut in pending:
            fut.cancel()
        executor.close(cancel=True)
    finally:
        bar.close()
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
