"""The training loop: every reparametrisation θ = g(φ), and full-space training, runs through
:func:`train_stack`.

A step is: take each seed's minibatch by index, θ = g(φ) (one tensor op for the built-in
methods), one forward of the network at θ, backprop to φ, one optimizer step on φ. K seeds of the
same (model, dataset, method, d) are trained as one stack (φ is K × d): the network runs for all
of them at once (:meth:`FlatNet.stacked_forward`), affine reparametrisations apply their stacked
projections in one call (:meth:`Projection.apply_stacked`), and they are evaluated together. A
single trial (K = 1) takes the step a plain PyTorch loop takes: its minibatch, θ = g(φ), the
network on its own θ, one backward, the optimizer's update — no stacking, no per-call hooks of
``torch.optim`` (``PaperAdam.update``); the same numbers as a stack of one, bit for bit. (The MNIST-1D MLP's
trial went from 1.19× the plain loop's CPU time to ≈ 1.02×: ``python -m perf anchor``.)

Seeds are independent: the summed loss of the stack has per-seed gradients, every optimizer here
is elementwise, and a seed that diverges is recorded as diverged at that step while the others go
on. So a trial trained in a stack agrees with the same trial trained alone to float tolerance.

Trials (:func:`train_trials`) are evaluated on the full train and test sets at step 0, every
``eval_every_epochs`` epochs and at the end; final and best values of every metric are kept. The
full-space training of burn-in, pre-training and trajectories (:func:`train_full`) is the same
loop with θ itself as φ, momentum SGD, no evaluations and an optional L2 term.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from dofbench.config.identity import derive_seed
from dofbench.config.schemas import TrainConfig
from dofbench.engine.data import DataBundle
from dofbench.engine.evaluate import SPLITS, evaluate_stacked, stacked_loss, summarize
from dofbench.engine.flat import FlatNet
from dofbench.engine.optim import PaperAdam, make_optimizer
from dofbench.engine.projections import dense_bytes, stack_projections
from dofbench.engine.reparam import AffineReparam, MethodContext, Reparam, TrainOutcome
from dofbench.errors import DivergedError

MAX_GROUP = 16
"""The largest number of seeds the scheduler puts in one stack."""

DIVERGENCE_CHECK_EVERY = 25
"""Steps between checks of the training loss for non-finite values. Reading the loss back from
the device (``torch.isfinite(...).tolist()``) makes the host wait for the step to finish — on a
GPU that stalls the queue of kernels every step. Checking every 25 steps loses nothing: a
non-finite loss gives non-finite gradients, which the optimizer writes into φ, so every later
loss is non-finite too and the next check (or evaluation, or the last step, all checked as well)
catches it. Full-space training (:func:`train_full`) checks every step: it raises at once."""

DENSE_BATCH_BYTES = 8 * 1024**2
"""On CPU, trials with a dense projection are stacked only while their D×d matrix is at most this
big. A step streams every seed's matrix twice (A φ and Aᵀ g), which seeds trained together cannot
share; beyond a few MiB per seed that traffic dominates the step and stacking no longer pays much
(measured with ``python -m perf subspace``, table 3, MNIST-1D MLP at K = 8: 1.5–1.6× at 3.9 MB per
seed, 1.0–1.3× at 15.6 MB, where a trial alone keeps its matrix in cache), so such trials run one
at a time and spread over the workers instead."""


def dense_group_limit(D: int, d: int, device: str) -> int:
    """How many seeds with a dense D×d projection each it pays to train together on ``device``
    ('cpu' or 'cuda'): :data:`MAX_GROUP` while the matrix is at most :data:`DENSE_BATCH_BYTES`
    or on a GPU, else 1 (one at a time)."""
    return MAX_GROUP if device != "cpu" or dense_bytes(D, d) <= DENSE_BATCH_BYTES else 1


STACK_SEEDS_ENV = "DOFBENCH_STACK_SEEDS"
"""Set to 1, trials that differ only in seed are stacked whatever the model says about it
(``Model.batchable`` answers for the CPU, where stacked convolutions do not pay; on a GPU they
may): the method still decides, and a model with buffers (BatchNorm) is still trained one trial
at a time. Read by the grouping of a run and by every worker, so it reaches process and local Dask
workers through their environment. Training in a stack does not change a trial's results beyond
float tolerance (module docstring)."""


def stack_seeds_forced() -> bool:
    """Whether :data:`STACK_SEEDS_ENV` asks to stack seeds of every model."""
    return os.environ.get(STACK_SEEDS_ENV, "").strip().lower() in ("1", "true", "yes")


class NotBatchable(ValueError):
    """The trials cannot share a step (different shapes, optimizers or schedules)."""


# ------------------------------------------------------------------------------------ plans
def batch_order(n: int, batch_size: int, steps: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches for ``steps`` steps: a fresh permutation per epoch, last partial batch kept."""
    out: list[torch.Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=generator)
        out.extend(perm[i:i + batch_size] for i in range(0, n, batch_size))
    return out[:steps]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


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


# ------------------------------------------------------------------------------------ the loop
def _theta_map(reps: list[Reparam], device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """φ (K × d) ↦ θ (K × D). Affine reparametrisations of several seeds apply their stacked
    projections in one call; anything else (and a stack of one) calls each seed's own map."""
    if len(reps) > 1 and all(isinstance(r, AffineReparam) and r.projection is not None for r in reps):
        try:
            cls, static, tensors = stack_projections([r.projection for r in reps])
        except ValueError as exc:
            raise NotBatchable(str(exc)) from None
        tensors = {k: v.to(device) for k, v in tensors.items()}
        origins = torch.stack([r.origin.to(device) for r in reps])
        return lambda phi: origins + cls.apply_stacked(tensors, phi, **static)
    return lambda phi: torch.stack([r.theta(phi[k]) for k, r in enumerate(reps)])


def train_stack(net: FlatNet, reps: list[Reparam], data: DataBundle, orders: list[list[torch.Tensor]], *,
                loss_fn: Callable, device: torch.device, metrics: list = (), eval_every: int | None = None,
                eval_batch_size: int | None = None, check_every: int = DIVERGENCE_CHECK_EVERY,
                penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
                on_step: Callable[[int, torch.Tensor], None] | None = None) -> list[TrainOutcome]:
    """Train K = len(reps) seeds together, seed k on the minibatches ``orders[k]`` (one per
    step), and return one :class:`TrainOutcome` per seed. The reparametrisations share their
    optimizer, learning rate (schedule) and d.

    ``metrics`` are evaluated at step 0, every ``eval_every`` steps and at the last step (none
    without ``eval_every``); ``penalty(θ)`` adds a per-seed term (K,) to the training loss;
    ``on_step(step, φ)`` is called after every optimizer step. A seed whose training loss (checked
    every ``check_every`` steps) or evaluation is non-finite stops there as 'diverged'."""
    K = len(reps)
    r0 = reps[0]
    total = len(orders[0])
    thetas_of = _theta_map(reps, device)
    phi = torch.stack([r.phi0.detach().to(device) for r in reps]).requires_grad_(True)
    opt = make_optimizer(r0.optimizer, [phi], r0.lr, **r0.optimizer_kwargs)
    advance = opt.update if isinstance(opt, PaperAdam) else opt.step  # update: step without torch.optim's hooks
    evals: list[list[tuple[int, str, str, float]]] = [[] for _ in range(K)]
    done: list[TrainOutcome | None] = [None] * K
    # divergence is about the loss: a metric that can be NaN (an AUROC of one class) is not a divergence
    loss_keys = {f"{split}_{m.name}" for m in metrics if getattr(m, "task_loss", False) for split in SPLITS}

    def record(ks: list[int], step: int) -> list[bool]:
        """Evaluate seeds ``ks`` together; whether each one's losses stayed finite."""
        with torch.no_grad():
            thetas = torch.stack([reps[k].theta(phi.detach()[k]) for k in ks])
        outs = evaluate_stacked(net, thetas, data, metrics, loss_fn, eval_batch_size)
        for k, out in zip(ks, outs):
            evals[k].extend((step, *key.split("_", 1), value) for key, value in out.items())
        return [all(math.isfinite(v) for key, v in out.items() if key in loss_keys) for out in outs]

    def finish(k: int, status: str, step: int, error: str | None = None) -> None:
        done[k] = TrainOutcome(status, summarize(evals[k], metrics), evals[k], step, reps[k].d,
                               reps[k].info, error, phi=phi.detach()[k].clone())

    net.train()  # steps in train mode; evaluations switch to eval mode and back
    if eval_every:
        record(list(range(K)), 0)
    step = 0
    for step in range(1, total + 1):
        if r0.lr_schedule is not None:
            for group in opt.param_groups:
                group["lr"] = r0.lr_schedule(step - 1)
        if K == 1:  # one trial: the step a plain loop takes, without the stack's bookkeeping
            rows = orders[0][step - 1].to(device)
            xb, yb = data.x_train.index_select(0, rows), data.y_train.index_select(0, rows)
            theta = r0.theta(phi[0])
            loss = loss_fn(net.forward(theta, xb), yb)
            if penalty is not None:
                loss = loss + penalty(theta[None])[0]
            losses = loss.detach().reshape(1)
        else:
            idx = torch.stack([o[step - 1] for o in orders]).to(device)
            rows = idx.flatten()  # index_select: several times faster than x[idx] for a (K, batch) idx
            xb = data.x_train.index_select(0, rows).view(*idx.shape, *data.x_train.shape[1:])
            yb = data.y_train.index_select(0, rows).view(*idx.shape, *data.y_train.shape[1:])
            thetas = thetas_of(phi)
            losses = stacked_loss(loss_fn, net.stacked_forward(thetas, xb), yb)
            if penalty is not None:
                losses = losses + penalty(thetas)
            loss = losses.sum()
        phi.grad = None  # φ is the optimizer's only parameter: its zero_grad(set_to_none=True)
        loss.backward()
        advance()
        if on_step is not None:
            on_step(step, phi)
        check_loss = step % check_every == 0
        check_eval = bool(eval_every) and (step % eval_every == 0 or step == total)
        if not (check_loss or check_eval):
            continue
        finite = torch.isfinite(losses.detach()).tolist() if check_loss else [True] * K
        live = []
        for k in range(K):
            if done[k] is None and not finite[k]:
                finish(k, "diverged", step, f"non-finite training loss at step {step}")
            elif done[k] is None:
                live.append(k)
        if check_eval and live:
            for k, ok in zip(live, record(live, step)):
                if not ok:
                    finish(k, "diverged", step, f"non-finite evaluation at step {step}")
        if all(o is not None for o in done):
            break
    for k in range(K):
        if done[k] is None:
            finish(k, "ok", step)
    return [o for o in done if o is not None]


# ------------------------------------------------------------------------------------ trials
def check_batchable(ctxs: list[MethodContext], reps: list[Reparam]) -> None:
    """Raise :class:`NotBatchable` unless the trials can share one step: affine
    reparametrisations with the same optimizer, lr and d, no schedule, the same model, dataset
    and training config, and no buffers (BatchNorm)."""
    if len(ctxs) != len(reps) or not reps:
        raise NotBatchable("one reparametrisation per context is needed")
    first = reps[0]
    for r in reps:
        if not isinstance(r, AffineReparam) or r.origin is None or r.projection is None:
            raise NotBatchable("only affine reparametrisations θ = origin + Aφ can be batched")
        if (r.optimizer, r.lr, r.optimizer_kwargs, r.d) != (first.optimizer, first.lr, first.optimizer_kwargs, first.d):
            raise NotBatchable("the trials differ in optimizer, learning rate or d")
        if r.lr_schedule is not None:
            raise NotBatchable("learning-rate schedules are not batched")
    c0 = ctxs[0]
    for c in ctxs:
        if (c.train, c.spec.model, c.spec.dataset, c.net.shapes) != (c0.train, c0.spec.model, c0.spec.dataset, c0.net.shapes):
            raise NotBatchable("the trials differ in model, dataset or training config")
        if c.net.buffers:
            raise NotBatchable("models with buffers (BatchNorm) are not batched")


def train_trials(ctxs: list[MethodContext], reps: list[Reparam]) -> list[TrainOutcome]:
    """Train the trials of ``ctxs`` with their reparametrisations ``reps`` in one stack (one
    trial: a stack of one); one :class:`TrainOutcome` each. Several trials must differ only in
    seed (:func:`check_batchable`)."""
    if len(ctxs) > 1:
        check_batchable(ctxs, reps)
    c0 = ctxs[0]
    total, eval_every = step_plan(c0.train, len(c0.data.y_train))
    c0.net.reset_buffers()  # BatchNorm running statistics start afresh for every trial
    return train_stack(c0.net, reps, c0.data, [trial_batches(c, total) for c in ctxs], loss_fn=c0.loss_fn(),
                       device=c0.device, metrics=c0.metrics, eval_every=eval_every,
                       eval_batch_size=c0.train.eval_batch_size)


def train_reparam(ctx: MethodContext, rep: Reparam) -> TrainOutcome:
    """Train φ of ``rep`` for one trial and return the outcome."""
    return train_trials([ctx], [rep])[0]


def train_full(net: FlatNet, theta: torch.Tensor, data: DataBundle, *, steps: int, lr: float,
               batch_size: int, generator: torch.Generator, momentum: float = 0.9,
               weight_decay: float = 0.0, decay_mask: torch.Tensor | None = None,
               loss_fn: Callable | None = None, snapshot_every: int | None = None,
               lr_schedule: Callable[[int], float] | None = None,
               snapshot_steps: Iterable[int] | None = None,
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Full-space heavy-ball momentum SGD from θ for ``steps`` steps (burn-in, pre-training,
    trajectories): :func:`train_stack` with θ itself as φ. Returns θ_steps and, with
    ``snapshot_every=k``, θ at steps 0, k, 2k, … (or, with ``snapshot_steps``, at step 0 and at
    each of the given steps). L2 ``weight_decay`` applies where ``decay_mask``
    is 1 (all entries if None). Raises :class:`DivergedError` at the first non-finite loss."""
    loss_fn = loss_fn or data.loss or F.cross_entropy
    rep = Reparam(phi0=theta.detach(), theta=lambda phi: phi, optimizer="sgd", lr=lr,
                  optimizer_kwargs={"momentum": momentum}, lr_schedule=lr_schedule)
    at = set(snapshot_steps) if snapshot_steps is not None else None
    snaps = [theta.detach().clone()] if snapshot_every or at is not None else []

    def l2(thetas: torch.Tensor) -> torch.Tensor:
        sq = thetas.pow(2) if decay_mask is None else thetas.pow(2) * decay_mask
        return 0.5 * weight_decay * sq.sum(-1)

    def on_step(step: int, phi: torch.Tensor) -> None:
        if (step in at) if at is not None else step % snapshot_every == 0:
            snaps.append(phi.detach()[0].clone())

    (outcome,) = train_stack(net, [rep], data, [batch_order(len(data.y_train), batch_size, steps, generator)],
                             loss_fn=loss_fn, device=theta.device, check_every=1, penalty=l2 if weight_decay else None,
                             on_step=on_step if snapshot_every or at is not None else None)
    if outcome.status != "ok":
        raise DivergedError(f"full-space training diverged at step {outcome.steps}")
    return outcome.phi, snaps
