"""Base classes of the components plugins provide: models, datasets, methods and metrics.

A component is a small object with a ``name``, a one-line ``description`` and a pydantic
``Params`` model (``extra="forbid"``, frozen; ``Field(description=...)`` is the single source of
help text). Plugins return instances from the hooks in :mod:`dofbench.plugin.hookspecs`; roles the
core needs to know (a full-training baseline, the task's loss, an exact quadratic landscape) are
declared here, never recognised by a component's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch

from dofbench.config.schemas import NoParams, Params
from dofbench.errors import DofbenchError
from dofbench.engine.loop import MAX_GROUP
from dofbench.engine.data import DataBundle, DatasetInfo
from dofbench.engine.reparam import MethodContext, Reparam


class Component:
    kind: ClassVar[str] = "component"
    name: str = ""
    description: str = ""
    Params: type[Params] = NoParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    """Named groups of params a suite asks for with ``preset = "NAME"`` beside ``params``
    (e.g. ``"paper-code"``: the paper's released code where it deviates from the defaults). A
    preset expands into explicit params before validation (params given beside it win), so the
    trial spec and its id carry the expanded params, never the preset's name."""

    def parse_params(self, raw: dict | None) -> Params:
        return self.Params.model_validate(raw or {})


class Dataset(Component):
    kind = "dataset"

    def info(self, params: Params) -> DatasetInfo:  # pragma: no cover - interface
        raise NotImplementedError

    def load(self, params: Params, *, data_root: str | None = None, download: bool = False) -> DataBundle:
        """Load the whole dataset into memory. Raise DofbenchError when the data are missing."""
        raise NotImplementedError  # pragma: no cover - interface

    def check_available(self, params: Params, *, data_root: str | None = None, download: bool = False) -> None:
        """Raise DofbenchError (where it looked, how to provide the data) if :meth:`load` would
        fail for missing data. Called before any training. Embedded data are always available."""

    def prepare(self, params: Params, *, data_root: str | None = None, download: bool = False) -> None:
        """Make the data available before any trial starts (the driver calls it once per dataset of
        a run): fetch it when ``download`` allows, else check it is there (:meth:`check_available`).
        Raise DofbenchError (one line) when it cannot be had."""
        self.check_available(params, data_root=data_root, download=download)

    def quadratic_spectrum(self, params: Params) -> Any:
        """A dataset whose training loss is exactly the quadratic well ½ (θ − θ*)ᵀ H (θ − θ*) with a
        diagonal H returns H's eigenvalues (array-like of length D), so ``dofbench theory suite``
        can predict d* from the geometry; any other returns None (the default)."""
        return None


# --------------------------------------------------------------------------------------- models
class Model(Component):
    kind = "model"

    def build(self, params: Params, info: DatasetInfo) -> torch.nn.Module:  # pragma: no cover
        raise NotImplementedError

    def batchable(self, params: Params) -> bool:
        """Whether training several seeds together in one stack
        (:func:`dofbench.engine.loop.train_trials`) pays off on CPU."""
        return False

    def input_layout(self, params: Params, device: str) -> str | None:
        """The memory layout this model runs its image inputs (N, C, H, W) fastest in on ``device``
        ('cpu' or 'cuda'): ``"channels_last"`` (the same values with channels-last strides: the
        trial's :class:`~dofbench.plugin.FlatNet` gives every batch and evaluation chunk those
        strides before the module sees them), or None (the default: as the dataset delivers
        them). Only the order of float sums depends on it, never what a trial is."""
        return None

    def initial_distance(self, params: Params) -> float | None:
        """A model that starts at a fixed distance R = ‖θ0 − θ*‖ from the minimum of a quadratic
        well (see :meth:`Dataset.quadratic_spectrum`) returns R; any other returns None."""
        return None


# --------------------------------------------------------------------------------------- methods
class Method(Component):
    """A DOF-reduction method.

    The common case is a reparametrisation θ = g(φ), φ ∈ R^d: implement :meth:`setup`, which
    returns a :class:`dofbench.plugin.Reparam`, and the training loop does the rest. Expensive
    preparation (a burn-in point, a trajectory, a mask) goes through ``ctx.cache`` so it is
    computed once per seed and shared across d. A method that does not fit may override
    :meth:`train` and take over training entirely.
    """

    kind = "method"
    baseline: ClassVar[bool] = False
    """True for the full-training baseline (it trains all D parameters): a suite that runs it
    compares the other methods with it (Li et al.'s d_int90 in the leaderboard)."""
    yardstick: ClassVar[bool] = False
    """True for the method every other is measured against in comparisons (``dofbench compare``,
    the report's first table): "how many times fewer dimensions than random subspaces"."""

    def fixed_dim(self, params: Params, total_params: int) -> int | None:
        """A method that always trains a fixed number of scalars (e.g. full training) returns it;
        the suite's dims then do not apply to it."""
        return None

    def max_dim(self, params: Params, total_params: int) -> int:
        """Largest d this method accepts for a network with D = total_params parameters."""
        return total_params

    def check_dim(self, params: Params, total_params: int, d: int) -> str | None:
        """Why a trial of this d cannot run for D = total_params (e.g. a matrix over its memory
        budget), said before anything trains; None when it can."""
        return None

    def batchable(self, params: Params) -> bool:
        """Whether seeds of this method can be trained together in one stack
        (:func:`dofbench.engine.loop.train_trials`): its :meth:`setup` returns an
        :class:`~dofbench.plugin.AffineReparam` and it does not override :meth:`train`. The
        scheduler groups seeds only when the model's ``batchable`` agrees."""
        return False

    def group_limit(self, params: Params, total_params: int, d: int, device: str) -> int:
        """How many seeds of a batchable trial with D = total_params and this d it pays to train
        together on ``device`` ('cpu' or 'cuda'); the scheduler cuts its groups to this size
        (1: one at a time). Override when the cost grows with the group (e.g. a stored D×d
        matrix per seed)."""
        return MAX_GROUP

    def nested(self, params: Params) -> bool:
        """Whether the method's subspaces of one seed are nested: the d-dimensional one is contained
        in every larger one (e.g. the first d columns of one projection per seed), so success is
        geometrically monotone in d per seed and each seed has a first successful dimension. The
        core then reads d* as an order statistic of those dimensions (its interval from one
        bracket per seed), the adaptive search bisects per seed without a model, and the
        ``first_success`` view estimates the local angular dimension (Crofton)."""
        return False

    def setup(self, ctx: MethodContext) -> Reparam:  # pragma: no cover - interface
        raise NotImplementedError

    def train(self, ctx: MethodContext) -> Any:
        """Override to take over training; return a :class:`dofbench.plugin.TrainOutcome`.
        The default returns None and lets the training loop run :meth:`setup`'s reparam."""
        return None


# --------------------------------------------------------------------------------------- metrics
class Metric(Component):
    """An evaluation metric, additive by default: ``batch_sum(outputs, targets)`` returns the sum
    over the batch; the value on a split is the total divided by the number of examples (the fast
    path of the built-ins). A metric that is not a mean over examples (calibration error, AUROC,
    F1) overrides :meth:`accumulator` instead, or is a :class:`TorchMetric`. ``tasks``: the
    dataset tasks it applies to. A metric that declares ``task_loss = True`` is the task's own
    training loss: it is evaluated with the loss function the trial trains on (the dataset's, e.g.
    a quadratic well's, else cross-entropy), not with its ``batch_sum``."""

    kind = "metric"
    higher_is_better: bool = True
    tasks: tuple[str, ...] = ("classification",)
    task_loss: bool = False
    range: tuple[float, float] | None = None  # the values it can take: ε outside is refused

    def accumulator(self, k: int, info: DatasetInfo) -> Any:
        """None for an additive metric (the default). A stateful metric returns an object with
        ``update(outputs, targets)`` — called once per evaluation chunk with the outputs of the K
        networks evaluated together (K × chunk × …; K = 1 for a single trial) and the chunk's
        targets — and ``compute()``, the K values over the whole split."""
        return None

    def batch_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def stacked_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``batch_sum`` of each of K networks' outputs (K × batch × …) on the same targets: a
        tensor of K sums. The default vmaps ``batch_sum``; override with a direct form when
        seeds trained together should evaluate cheaply."""
        return torch.func.vmap(self.batch_sum, in_dims=(0, None))(outputs, targets)


class _TorchAccumulator:
    """K torchmetrics states, one per stacked network; each chunk updates all of them."""

    def __init__(self, name: str, metrics: list[Any], transform: Callable | None):
        self.name, self.metrics, self.transform = name, metrics, transform
        self._device: Any = None

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if self._device != outputs.device:
            self.metrics = [m.to(outputs.device) for m in self.metrics]
            self._device = outputs.device
        for m, o in zip(self.metrics, outputs):
            m.update(self.transform(o) if self.transform else o, targets)

    def compute(self) -> list[float]:
        out = []
        for m in self.metrics:
            value = torch.as_tensor(m.compute())
            if value.numel() != 1:
                raise DofbenchError(f"metric {self.name!r}: compute() returned a tensor of shape {tuple(value.shape)}; "
                                    "a dofbench metric is one number (e.g. average='macro')")
            out.append(float(value))
        return out


@dataclass
class TorchMetric(Metric):
    """A metric from torchmetrics (or any object with ``update(preds, target)``, ``compute()`` and
    ``to(device)``) as a dofbench metric: ``factory(info)`` builds a fresh one for a dataset
    (``info.num_classes``, ``info.input_shape``), one per network evaluated, updated chunk by
    chunk with the network's outputs (the logits, or ``transform(outputs)``) and computed over the
    whole split. Seeds trained together get one state each. Values are stored like any metric's:
    ``train_NAME``, ``best_test_NAME`` …, usable as a suite's threshold metric."""

    name: str = ""
    factory: Callable[[DatasetInfo], Any] | None = None
    higher_is_better: bool = True
    description: str = ""
    tasks: tuple[str, ...] = ("classification",)
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    def accumulator(self, k: int, info: DatasetInfo) -> _TorchAccumulator:
        if self.factory is None:
            raise DofbenchError(f"metric {self.name!r}: TorchMetric needs a factory(info) that builds the metric")
        return _TorchAccumulator(self.name, [self.factory(info) for _ in range(k)], self.transform)

    def batch_sum(self, outputs, targets):
        raise DofbenchError(f"metric {self.name!r} is not additive: it is evaluated through its accumulator")


@dataclass
class FunctionMetric(Metric):
    name: str = ""
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(default=lambda o, t: o.sum())
    higher_is_better: bool = True
    description: str = ""
    tasks: tuple[str, ...] = ("classification",)
    stacked_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # see stacked_sum
    task_loss: bool = False
    range: tuple[float, float] | None = None

    def batch_sum(self, outputs, targets):
        return self.fn(outputs, targets)

    def stacked_sum(self, outputs, targets):
        if self.stacked_fn is None:
            return super().stacked_sum(outputs, targets)
        return self.stacked_fn(outputs, targets)
