"""What a method hands to the training loop: a reparametrisation θ = g(φ) (:class:`Reparam`, or
:class:`AffineReparam` when θ = origin + Aφ so seeds can be stacked), the context it is built from
(:class:`MethodContext`) and what training returns (:class:`TrainOutcome`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from dofbench.config.identity import derive_seed
from dofbench.config.schemas import Params, TrainConfig, TrialSpec
from dofbench.engine.artifacts import ArtifactCache
from dofbench.engine.data import DataBundle
from dofbench.engine.flat import FlatNet
from dofbench.engine.projections import Projection


@dataclass
class Reparam:
    """θ = theta(φ), φ starts at phi0 and is trained with the named optimizer.

    ``d`` is len(phi0): the count of trainable scalars actually used. ``info`` is stored with the
    trial (e.g. the resolved projection). ``lr_schedule(step) -> lr`` overrides the constant lr.
    """

    phi0: torch.Tensor
    theta: Callable[[torch.Tensor], torch.Tensor]
    optimizer: str = "paper-adam"
    lr: float = 5e-2
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    lr_schedule: Callable[[int], float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def d(self) -> int:
        return int(self.phi0.numel())


@dataclass
class TrainOutcome:
    """What training one trial gave: its status ('ok' | 'diverged'), the final and best value of
    every metric (``metrics``, keys like 'train_acc', 'best_test_loss'), every evaluation
    (``evals``: (step, split, metric, value)), the steps taken, the d actually trained, what the
    method resolved (``info``, stored as method_info), why it diverged (``error``) and φ at the end
    (``phi``, not stored)."""

    status: str
    metrics: dict[str, float]
    evals: list[tuple[int, str, str, float]]
    steps: int
    d: int
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    phi: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class MethodContext:
    """Everything a method needs to prepare its reparametrisation for one trial."""

    spec: TrialSpec
    params: Params
    net: FlatNet
    theta0: torch.Tensor
    data: DataBundle
    train: TrainConfig
    device: torch.device
    cache: ArtifactCache
    metrics: list[Any]  # the metric components of the trial's task

    @property
    def d(self) -> int:
        return self.spec.d

    @property
    def D(self) -> int:
        return self.net.D

    def seed(self, purpose: str, *extra: Any) -> int:
        """A seed for ``purpose`` that depends on model, dataset, method, train config and seed
        (not on d, unless passed in ``extra``)."""
        return derive_seed(purpose, *self.spec.method_key(), *extra)

    def generator(self, purpose: str, *extra: Any) -> torch.Generator:
        g = torch.Generator(device="cpu")
        g.manual_seed(self.seed(purpose, *extra))
        return g

    def cache_key(self, *extra: Any) -> list[Any]:
        """Key of an artifact shared across d: the spec without d, plus ``extra``."""
        return [*self.spec.method_key(), *extra]

    def loss_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return self.data.loss or F.cross_entropy


@dataclass
class AffineReparam(Reparam):
    """θ = origin + projection(φ): a reparametrisation whose pieces are tensors, so several seeds
    can be stacked. ``theta`` must compute exactly ``origin + projection(phi)``."""

    origin: torch.Tensor | None = None
    projection: Projection | None = None
