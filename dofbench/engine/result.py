"""The result of one trial, as a worker returns it and the store writes it: built here, in one
place, for every way a trial can end (trained, diverged, failed in the worker, lost with its
worker)."""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, field
from importlib.metadata import version as _dist_version
from typing import Any, Literal

import torch

from dofbench.config.schemas import TrialSpec
from dofbench.engine.reparam import TrainOutcome

Status = Literal["ok", "failed", "diverged"]


def dofbench_version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    return _dist_version("dofbench")


def versions() -> dict[str, str]:
    """What produced a result: dofbench, torch, numpy, Python (and CUDA where available)."""
    import numpy

    out = {"dofbench": dofbench_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "python": platform.python_version()}
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class TrialResult:
    """One finished trial: its spec, how it ended and everything measured.

    ``status``: 'ok' (trained), 'diverged' (a non-finite loss or evaluation: an unsuccessful seed)
    or 'failed' (an error: no evidence about d; ``error`` says why and ``traceback`` where).
    ``metrics``: final and best value of every metric; ``evals``: (step, split, metric, value) of
    every evaluation; ``d_used``: the d actually trained; ``method_info``: what the method resolved
    (with ``batched`` = K for seeds trained in a stack of K); ``wall_s``: the trial's share of its
    stack's time."""

    spec: TrialSpec
    status: Status
    error: str | None = None
    traceback: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    evals: list[tuple[int, str, str, float]] = field(default_factory=list)
    steps: int = 0
    d_used: int | None = None
    total_params: int | None = None
    method_info: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None
    device: str | None = None
    versions: dict[str, str] = field(default_factory=versions)
    started_at: str = field(default_factory=now)
    finished_at: str = field(default_factory=now)

    @property
    def trial_id(self) -> str:
        return self.spec.trial_id

    @classmethod
    def trained(cls, spec: TrialSpec, outcome: TrainOutcome, *, total_params: int, device: str,
                started_at: str, wall_s: float, batched: int = 1) -> "TrialResult":
        """A trial that trained to the end ('ok') or stopped diverged."""
        info = dict(outcome.info)
        if batched > 1:
            info["batched"] = batched
        return cls(spec, outcome.status, error=outcome.error, metrics=outcome.metrics, evals=outcome.evals,
                   steps=outcome.steps, d_used=outcome.d, total_params=total_params, method_info=info,
                   wall_s=wall_s, device=device, started_at=started_at)

    @classmethod
    def stopped(cls, spec: TrialSpec, status: Status, error: str, *, traceback: str | None = None,
                total_params: int | None = None, device: str | None = None, started_at: str | None = None,
                wall_s: float | None = None) -> "TrialResult":
        """A trial that ended before training did: it failed (an error in the worker, or its worker
        died or was lost) or its preparation diverged."""
        return cls(spec, status, error=error, traceback=traceback, total_params=total_params, device=device,
                   wall_s=wall_s, **({"started_at": started_at} if started_at else {}))
