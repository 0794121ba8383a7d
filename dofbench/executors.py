"""Executors: how trial groups are run. ``concurrent.futures``-shaped: ``submit`` returns a
Future of a list of result dicts. The runner keeps at most ``max_in_flight`` groups pending and
writes each result as it arrives, so workers never touch the store.

The built-in ``local`` executor runs in the driver process (debugging, notebooks, and the only
executor that sees plugins registered at run time through the API). More executors come from the
``dofbench_executors`` hook.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from dofbench.worker import Runtime, Worker


class Executor:
    name = "executor"
    max_in_flight = 1

    def submit(self, specs: list[dict[str, Any]]) -> "Future[list[dict[str, Any]]]":  # pragma: no cover
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        pass


@dataclass(frozen=True)
class ExecutorFactory:
    """What the ``dofbench_executors`` hook returns: a named constructor
    ``create(host, runtime, workers, options) -> Executor``."""

    name: str
    description: str
    create: Callable[..., Executor]


class LocalExecutor(Executor):
    """Runs each group synchronously in the driver process."""

    name = "local"
    max_in_flight = 1

    def __init__(self, host, runtime: Runtime):
        self.worker = Worker(runtime, host=host)

    def submit(self, specs):
        from dofbench.schemas import TrialSpec

        fut: Future = Future()
        try:
            fut.set_result([self.worker.run(TrialSpec.model_validate(s)) for s in specs])
        except BaseException as exc:  # KeyboardInterrupt propagates to the runner
            if not isinstance(exc, Exception):
                raise
            fut.set_exception(exc)
        return fut


def _create_local(host, runtime: Runtime, workers: int | None = None, options: dict | None = None) -> Executor:
    return LocalExecutor(host, runtime)


LOCAL = ExecutorFactory("local", "in the driver process, one trial at a time", _create_local)
