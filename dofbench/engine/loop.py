"""The shared trainer: every reparametrisation θ = g(φ) is trained by the same loop.

A step is: take a minibatch by index, θ = g(φ) (one tensor op for the built-in methods), one
``functional_call`` of the network at θ, backprop to φ, one optimizer step on φ. The full train
and test sets are evaluated at step 0, every ``eval_every_epochs`` epochs and at the end; final and
best values of every metric are kept. A non-finite loss ends the trial as 'diverged'.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F

from dofbench.config.identity import derive_seed
from dofbench.config.schemas import TrainConfig
from dofbench.engine.data import DataBundle
from dofbench.engine.flat import FlatNet
from dofbench.engine.optim import make_optimizer
from dofbench.engine.reparam import MethodContext, Reparam, TrainOutcome
from dofbench.errors import DivergedError


def batch_order(n: int, batch_size: int, steps: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches for ``steps`` steps: a fresh permutation per epoch, last partial batch kept."""
    out: list[torch.Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=generator)
        out.extend(perm[i:i + batch_size] for i in range(0, n, batch_size))
    return out[:steps]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


@torch.no_grad()
def evaluate(net: FlatNet, theta: torch.Tensor, data: DataBundle, metrics: list,
             loss_fn: Callable, batch_size: int = 4096) -> dict[str, float]:
    """Every metric on the full train and test sets: {'train_loss': ..., 'test_acc': ...}.
    Runs the network in eval mode (BatchNorm uses its running statistics and leaves them as they
    are) and restores the previous mode afterwards."""
    return _evaluate(net, lambda x: net.forward(theta, x)[None], 1, data, metrics, loss_fn, batch_size)[0]


def evaluate_stacked(net: FlatNet, thetas: torch.Tensor, data: DataBundle, metrics: list,
                     loss_fn: Callable, batch_size: int = 4096) -> list[dict[str, float]]:
    """:func:`evaluate` for K parameter vectors ``thetas`` (K×D) at once: one stacked forward
    (:meth:`FlatNet.stacked_forward`) per chunk instead of K, as the batched trainer needs."""
    k = len(thetas)
    rows = max(1, batch_size // k)  # a chunk holds as many activations as one network's would
    return _evaluate(net, lambda x: net.stacked_forward(thetas, x.expand(k, *x.shape)), k, data, metrics,
                     loss_fn, rows)


def _evaluate(net: FlatNet, forward: Callable[[torch.Tensor], torch.Tensor], k: int, data: DataBundle,
              metrics: list, loss_fn: Callable, batch_size: int) -> list[dict[str, float]]:
    """``forward(x)`` returns the k networks' outputs stacked (k × batch × …)."""
    was_training = net.training
    net.train(False)
    try:
        with torch.no_grad():
            return _evaluate_splits(forward, k, data, metrics, loss_fn, batch_size)
    finally:
        net.train(was_training)


def _evaluate_splits(forward: Callable[[torch.Tensor], torch.Tensor], k: int, data: DataBundle,
                     metrics: list, loss_fn: Callable, batch_size: int) -> list[dict[str, float]]:
    out: list[dict[str, float]] = [{} for _ in range(k)]
    for split in ("train", "test"):
        x, y = data.split(split)
        n = len(y)
        if n == 0:
            continue
        sums = {m.name: torch.zeros(k, dtype=torch.float64) for m in metrics}
        for i in range(0, n, batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            outputs = forward(xb)
            for m in metrics:
                sums[m.name] += _metric_sums(m, outputs, yb, loss_fn).detach().double().cpu()
        for name, s in sums.items():
            for j, v in enumerate((s / n).tolist()):
                out[j][f"{split}_{name}"] = v
    return out


def _metric_sums(m, outputs: torch.Tensor, yb: torch.Tensor, loss_fn: Callable) -> torch.Tensor:
    """Metric ``m`` summed over the batch, for each of the k stacked networks' ``outputs``: (k,).
    Several networks are evaluated in one call (:meth:`Metric.stacked_sum`; the loss directly
    when it is the default cross-entropy); a metric that cannot be batched is looped over."""
    def one(o: torch.Tensor) -> torch.Tensor:
        return loss_fn(o, yb) * len(yb) if m.name == "loss" else m.batch_sum(o, yb)

    if len(outputs) > 1:
        try:
            if m.name == "loss":
                return stacked_loss(loss_fn, outputs, yb, shared_targets=True) * len(yb)
            return m.stacked_sum(outputs, yb)
        except Exception:  # e.g. a metric that leaves torch (.item(), numpy): one call per network
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


def step_plan(cfg: TrainConfig, n: int) -> tuple[int, int]:
    """(total optimizer steps, steps between evaluations) of a trial on n training examples."""
    per_epoch = steps_per_epoch(n, cfg.batch_size)
    total = per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    return total, per_epoch * cfg.eval_every_epochs


def trial_batches(ctx: MethodContext, total: int) -> list[torch.Tensor]:
    """The trial's minibatch indices: the data order depends on (dataset, seed) only, so every d
    and method of a seed sees the same batches."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed("data-order", *ctx.spec.data_key()))
    return batch_order(len(ctx.data.y_train), ctx.train.batch_size, total, gen)


def train_reparam(ctx: MethodContext, rep: Reparam) -> TrainOutcome:
    """Train φ of ``rep`` with the shared loop and return the outcome."""
    cfg = ctx.train
    data, net = ctx.data, ctx.net
    total, eval_every = step_plan(cfg, len(data.y_train))
    batches = trial_batches(ctx, total)
    loss_fn = ctx.loss_fn()

    net.reset_buffers()  # BatchNorm running statistics start afresh for every trial
    net.train()  # steps in train mode; evaluate() switches to eval mode and back
    phi = rep.phi0.detach().clone().to(ctx.device).requires_grad_(True)
    opt = make_optimizer(rep.optimizer, [phi], rep.lr, **rep.optimizer_kwargs)
    evals: list[tuple[int, str, str, float]] = []

    def record(step: int) -> None:
        theta = rep.theta(phi.detach())
        for key, value in evaluate(net, theta, data, ctx.metrics, loss_fn, cfg.eval_batch_size).items():
            split, metric = key.split("_", 1)
            evals.append((step, split, metric, value))

    def outcome(status: str, steps: int, error: str | None = None) -> TrainOutcome:
        return TrainOutcome(status, summarize(evals, ctx.metrics), evals, steps, rep.d, rep.info, error)

    record(0)
    step = 0
    for step, idx in enumerate(batches, start=1):
        if rep.lr_schedule is not None:
            for group in opt.param_groups:
                group["lr"] = rep.lr_schedule(step - 1)
        idx = idx.to(ctx.device)
        out = net.forward(rep.theta(phi), data.x_train[idx])
        loss = loss_fn(out, data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 and not torch.isfinite(loss):
            return outcome("diverged", step, f"non-finite training loss at step {step}")
        if step % eval_every == 0 or step == total:
            record(step)
            if not all(math.isfinite(v) for s, _, _, v in evals if s == step):
                return outcome("diverged", step, f"non-finite evaluation at step {step}")
    return outcome("ok", step)


def train_full(net: FlatNet, theta: torch.Tensor, data: DataBundle, *, steps: int, lr: float,
               batch_size: int, generator: torch.Generator, momentum: float = 0.9,
               weight_decay: float = 0.0, decay_mask: torch.Tensor | None = None,
               loss_fn: Callable | None = None, snapshot_every: int | None = None,
               lr_schedule: Callable[[int], float] | None = None,
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Full-space heavy-ball momentum SGD from θ for ``steps`` steps (burn-in, pre-training,
    trajectories). Returns θ_steps and, with ``snapshot_every=k``, θ at steps 0, k, 2k, ….
    L2 ``weight_decay`` applies where ``decay_mask`` is 1 (all entries if None)."""
    loss_fn = loss_fn or data.loss or F.cross_entropy
    theta = theta.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([theta], lr=lr, momentum=momentum)
    snaps = [theta.detach().clone()] if snapshot_every else []
    n = len(data.y_train)
    for step, idx in enumerate(batch_order(n, batch_size, steps, generator), start=1):
        if lr_schedule is not None:
            opt.param_groups[0]["lr"] = lr_schedule(step - 1)
        idx = idx.to(theta.device)
        loss = loss_fn(net.forward(theta, data.x_train[idx]), data.y_train[idx])
        if weight_decay:
            sq = theta.pow(2) if decay_mask is None else theta.pow(2) * decay_mask
            loss = loss + 0.5 * weight_decay * sq.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            raise DivergedError(f"full-space training diverged at step {step}")
        if snapshot_every and step % snapshot_every == 0:
            snaps.append(theta.detach().clone())
    return theta.detach(), snaps


def wall_clock() -> float:
    return time.perf_counter()
