"""Full-set evaluations of K networks at once (K = 1: one trial) and the summary of a trial's
evaluations: final and best values of every metric on the train and test splits.

A metric is evaluated one of two ways. The built-ins (loss, accuracy) are *additive*: each chunk
of examples adds its sum (``batch_sum``/``stacked_sum``, K sums at once) and the value is the
total over the split's size — the fast path. A metric whose ``accumulator(k, info)`` returns an
object is *stateful* (expected calibration error, AUROC, F1: torchmetrics through
:class:`dofbench.plugin.TorchMetric`): the accumulator sees every chunk's outputs of the K networks
(``update(outputs, targets)``, outputs K × chunk × …) and gives the K values at the end
(``compute()``), whatever the chunk size.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from dofbench.engine.data import DataBundle
from dofbench.engine.flat import FlatNet

SPLITS = ("train", "test")


def evaluate(net: FlatNet, theta: torch.Tensor, data: DataBundle, metrics: list,
             loss_fn: Callable, batch_size: int | None = None) -> dict[str, float]:
    """Every metric on the full train and test sets at θ: {'train_loss': ..., 'test_acc': ...}."""
    return evaluate_stacked(net, theta[None], data, metrics, loss_fn, batch_size)[0]


def evaluate_stacked(net: FlatNet, thetas: torch.Tensor, data: DataBundle, metrics: list,
                     loss_fn: Callable, batch_size: int | None = None) -> list[dict[str, float]]:
    """:func:`evaluate` for K parameter vectors ``thetas`` (K×D): one stacked forward
    (:meth:`FlatNet.stacked_forward`) per chunk of batch_size / K rows, so a chunk holds as many
    activations as one network's would; ``batch_size`` None: the network's own choice for these
    inputs (:meth:`FlatNet.eval_rows`). Runs the network in eval mode (BatchNorm uses its running
    statistics and leaves them as they are) and restores the previous mode afterwards."""
    k = len(thetas)
    if k == 1:
        forward = lambda x: net.forward(thetas[0], x)[None]  # noqa: E731
    else:
        forward = lambda x: net.stacked_forward(thetas, x.expand(k, *x.shape))  # noqa: E731
    was_training = net.training
    net.train(False)
    try:
        with torch.no_grad():
            if batch_size is None:
                batch_size = net.eval_rows(data.x_train if len(data.x_train) else data.x_test)
            return _evaluate_splits(forward, k, data, metrics, loss_fn, max(1, batch_size // k))
    finally:
        net.train(was_training)


def _evaluate_splits(forward: Callable[[torch.Tensor], torch.Tensor], k: int, data: DataBundle,
                     metrics: list, loss_fn: Callable, batch_size: int) -> list[dict[str, float]]:
    """``forward(x)`` returns the k networks' outputs stacked (k × batch × …)."""
    out: list[dict[str, float]] = [{} for _ in range(k)]
    for split in SPLITS:
        x, y = data.split(split)
        n = len(y)
        if n == 0:
            continue
        stateful = {m.name: acc for m in metrics if (acc := accumulator(m, k, data)) is not None}
        additive = [m for m in metrics if m.name not in stateful]
        sums = {m.name: torch.zeros(k, dtype=torch.float64) for m in additive}
        for i in range(0, n, batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            outputs = forward(xb)
            for m in additive:
                sums[m.name] += _metric_sums(m, outputs, yb, loss_fn).detach().double().cpu()
            for acc in stateful.values():
                acc.update(outputs.detach(), yb)
        for name, s in sums.items():
            for j, v in enumerate((s / n).tolist()):
                out[j][f"{split}_{name}"] = v
        for name, acc in stateful.items():
            values = list(acc.compute())
            if len(values) != k:
                raise ValueError(f"metric {name!r}: its accumulator computed {len(values)} values for {k} networks")
            for j, v in enumerate(values):
                out[j][f"{split}_{name}"] = float(v)
    return out


def accumulator(m, k: int, data: DataBundle):
    """The stateful accumulator of metric ``m`` for ``k`` networks on ``data``, or None for an
    additive metric (one without ``accumulator``, or whose ``accumulator`` returns None)."""
    make = getattr(m, "accumulator", None)
    return make(k, data.info) if callable(make) else None


def _metric_sums(m, outputs: torch.Tensor, yb: torch.Tensor, loss_fn: Callable) -> torch.Tensor:
    """Metric ``m`` summed over the batch, for each of the k stacked networks' ``outputs``: (k,).
    A metric that declares ``task_loss`` is the task's own loss function (the dataset's, e.g. the
    quadratic well's), not its ``batch_sum``. Several networks are evaluated in one call
    (:meth:`Metric.stacked_sum`, :func:`stacked_loss`); a metric that cannot be batched (it leaves
    torch: ``.item()``, numpy) is called once per network."""
    task_loss = getattr(m, "task_loss", False)

    def one(o: torch.Tensor) -> torch.Tensor:
        return loss_fn(o, yb) * len(yb) if task_loss else m.batch_sum(o, yb)

    if len(outputs) > 1:
        try:
            if task_loss:
                return stacked_loss(loss_fn, outputs, yb, shared_targets=True) * len(yb)
            return m.stacked_sum(outputs, yb)
        except Exception:  # not batchable: one call per network below
            pass
    return torch.stack([torch.as_tensor(one(o)) for o in outputs])


def stacked_loss(loss_fn: Callable, outputs: torch.Tensor, targets: torch.Tensor, *,
                 shared_targets: bool = False) -> torch.Tensor:
    """``loss_fn(outputs[k], targets[k])`` for each of K networks at once: (K,). ``targets`` has
    a leading K axis unless ``shared_targets``. The default cross-entropy is one call on the
    K·batch rows; any other loss is vmapped."""
    k = outputs.shape[0]
    if loss_fn is F.cross_entropy:
        t = targets.expand(k, *targets.shape) if shared_targets else targets
        return F.cross_entropy(outputs.flatten(0, 1), t.flatten(0, 1), reduction="none").view(k, -1).mean(1)
    return torch.func.vmap(loss_fn, in_dims=(0, None if shared_targets else 0))(outputs, targets)


def summarize(evals: list[tuple[int, str, str, float]], metrics: list) -> dict[str, float]:
    """Final and best values per split and metric (best over evaluations after step 0)."""
    higher = {m.name: m.higher_is_better for m in metrics}
    final: dict[str, float] = {}
    best: dict[str, float] = {}
    for step, split, metric, value in evals:
        key = f"{split}_{metric}"
        final[key] = value
        if step == 0 or not math.isfinite(value):
            continue
        better = max if higher.get(metric, True) else min
        best[key] = better(best[key], value) if key in best else value
    out = dict(final)
    out.update({f"best_{k}": v for k, v in best.items()})
    return out
