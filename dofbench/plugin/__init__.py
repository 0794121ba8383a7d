"""Everything a plugin author needs, in one import: ``from dofbench.plugin import …``.

- hooks: :data:`hookimpl` and the specifications in :mod:`dofbench.plugin.hookspecs`;
- component bases: :class:`Model`, :class:`Dataset`, :class:`Method`, :class:`Metric` (and
  :class:`FunctionMetric`; :class:`TorchMetric` for torchmetrics metrics), their :class:`Params`
  base and :class:`NoParams`;
- what a method works with: :class:`MethodContext` in, :class:`Reparam` /
  :class:`AffineReparam` (or a :class:`TrainOutcome` from ``train``) out;
- the toolkit: the flat network (:class:`FlatNet`), projections, the optimizers' params, full-space
  training (:func:`train_full`), the artifact cache, data bundles and the paper's preprocessing,
  seeds derived from a spec, quadratic-well spectra;
- executors: :class:`Executor` and :class:`ExecutorFactory`;
- errors: :class:`DofbenchError` (one line for the user), :class:`DivergedError` and
  :class:`ExecutorLost` (an executor that can no longer run trials).

The built-in plugins (``dofbench_plugins``) import from here only.
"""

from dofbench.analysis.theory import spectrum
from dofbench.config.identity import derive_seed
from dofbench.config.schemas import NoParams, Params
from dofbench.engine.artifacts import ArtifactCache
from dofbench.engine.loop import MAX_GROUP, dense_group_limit
from dofbench.engine.data import (
    DataBundle, DatasetInfo, PreprocessParams, n_test_after, n_train_after, preprocess, resolve_root,
    shuffle_labels, stratified_subsample,
)
from dofbench.engine.flat import FlatNet, count_params, lecun_normal_, lecun_truncated_normal_
from dofbench.engine.loop import steps_per_epoch, train_full
from dofbench.engine.optim import SubspaceOptimizerParams
from dofbench.engine.projections import (
    DenseProjection, Projection, ProjectionKind, dense_bytes, make_projection, resolve_kind,
)
from dofbench.engine.reparam import AffineReparam, MethodContext, Reparam, TrainOutcome
from dofbench.errors import DivergedError, DofbenchError, ExecutorLost
from dofbench.plugin import hookspecs
from dofbench.plugin.components import Component, Dataset, FunctionMetric, Method, Metric, Model, TorchMetric
from dofbench.plugin.executor import Executor, ExecutorFactory
from dofbench.plugin.hookspecs import hookimpl

__all__ = [
    "hookimpl", "hookspecs",
    "Component", "Model", "Dataset", "Method", "Metric", "FunctionMetric", "TorchMetric", "Params", "NoParams",
    "MethodContext", "Reparam", "AffineReparam", "TrainOutcome",
    "DataBundle", "DatasetInfo", "PreprocessParams", "preprocess", "resolve_root", "stratified_subsample",
    "shuffle_labels", "n_train_after", "n_test_after",
    "FlatNet", "count_params", "lecun_normal_", "lecun_truncated_normal_", "steps_per_epoch", "train_full", "SubspaceOptimizerParams",
    "Projection", "DenseProjection", "ProjectionKind", "make_projection", "resolve_kind", "dense_bytes",
    "MAX_GROUP", "dense_group_limit", "ArtifactCache", "derive_seed", "spectrum",
    "Executor", "ExecutorFactory", "ExecutorLost", "DofbenchError", "DivergedError",
]
