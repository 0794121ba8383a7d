"""The executor interface: how trial groups are run (``concurrent.futures``-shaped).

An executor plugin returns :class:`ExecutorFactory` objects from the ``dofbench_executors`` hook.
The scheduler keeps at most ``max_in_flight`` groups submitted and writes each result as it
arrives, so executors and their workers never touch the store.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable


class Executor:
    """Runs groups of trials: ``submit(specs)`` returns a Future of their results, one per spec."""

    name = "executor"
    max_in_flight = 1
    workers: int | None = 1  # groups it runs at once (None: unknown), as the store's `runs` records it

    def submit(self, specs: list[Any]) -> "Future[list[Any]]":  # pragma: no cover - interface
        raise NotImplementedError

    def check(self) -> None:
        """Called about once a second while groups are pending: raise
        :class:`~dofbench.errors.ExecutorLost` when what was submitted can no longer run (say, a
        cluster without workers), rather than leave the run waiting for ever."""

    def close(self, cancel: bool = False) -> None:
        """Release workers; ``cancel`` drops queued groups and stops running ones. Idempotent."""


@dataclass(frozen=True)
class ExecutorFactory:
    """What the ``dofbench_executors`` hook returns: a named constructor
    ``create(host, runtime, workers, options) -> Executor``."""

    name: str
    description: str
    create: Callable[..., Executor]
