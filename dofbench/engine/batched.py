"""Seeds trained together: trials of the same (model, dataset, method, d) that differ only in seed
share one step over stacked φ, origins θ0 (or θ_t) and projections: the network runs for all
seeds at once (:meth:`dofbench.flat.FlatNet.stacked_forward`: batched matrix products for plain
MLPs, ``torch.func.vmap`` otherwise), the projections apply to all seeds in one call
(:meth:`dofbench.projections.Projection.apply_stacked`) and the seeds are evaluated together.

The step, data order, optimizer and evaluations of each seed are those of
:func:`dofbench.trainer.train_reparam`, so results agree with one-at-a-time training to float
tolerance. Seeds are independent: the summed loss of the stack has per-seed gradients, every
optimizer here is elementwise, and a seed that diverges is recorded as diverged at that step while
the others go on. Whether batching pays is the model's and method's call (``batchable``,
``group_limit``): on CPU it does for MLPs, not for conv nets (stacked convolutions are grouped
ones), and for dense projections only while the matrix is small (:func:`dense_group_limit`).
"""

from __future__ import annotations

import math

import torch

from dofbench.engine.optim import make_optimizer
from dofbench.engine.projections import stack_projections
from dofbench.engine.reparam import AffineReparam, MethodContext, Reparam, TrainOutcome
from dofbench.engine.loop import evaluate_stacked, stacked_loss, step_plan, summarize, trial_batches

MAX_GROUP = 16  # largest number of seeds the runner puts in one batched group

# A step streams every seed's dense projection twice (A φ and Aᵀ g), which seeds trained together
# cannot share. On CPU, beyond a few MiB per seed that traffic dominates the step and batching no
# longer pays much (measured with `python -m benchmarks subspace`, table 3, MNIST-1D MLP at K = 8:
# 1.5–1.6× at 3.9 MB per seed, 1.0–1.3× at 15.6 MB, where a trial alone keeps its matrix in
# cache), so such trials run one at a time and spread over the workers instead.
DENSE_BATCH_BYTES = 8 * 1024**2


def dense_group_limit(D: int, d: int, device: str) -> int:
    """How many seeds with a dense D×d projection each it pays to train together on ``device``
    ('cpu' or 'cuda'): :data:`MAX_GROUP` while the matrix is at most :data:`DENSE_BATCH_BYTES`
    or on a GPU, else 1 (one at a time)."""
    return MAX_GROUP if device != "cpu" or 4 * int(D) * int(d) <= DENSE_BATCH_BYTES else 1


class NotBatchable(ValueError):
    """The trials cannot share a step (different shapes, optimizers or schedules)."""


def _check(ctxs: list[MethodContext], reps: list[Reparam]) -> None:
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


def train_batched(ctxs: list[MethodContext], reps: list[Reparam]) -> list[TrainOutcome]:
    """Train the seeds of ``ctxs`` (with their reparametrisations ``reps``) together; one
    :class:`TrainOutcome` per seed, equal to :func:`train_reparam`'s to float tolerance.
    Raises :class:`NotBatchable` when they cannot share a step."""
    _check(ctxs, reps)
    K = len(ctxs)
    c0, r0 = ctxs[0], reps[0]
    cfg, data, net, device = c0.train, c0.data, c0.net, c0.device
    total, eval_every = step_plan(cfg, len(data.y_train))
    orders = [trial_batches(c, total) for c in ctxs]
    loss_fn = c0.loss_fn()

    try:
        cls, static, ptens = stack_projections([r.projection for r in reps])
    except ValueError as exc:
        raise NotBatchable(str(exc)) from None
    ptens = {k: v.to(device) for k, v in ptens.items()}
    origins = torch.stack([r.origin.to(device) for r in reps])

    net.train()
    phi = torch.stack([r.phi0.detach().to(device) for r in reps]).requires_grad_(True)
    opt = make_optimizer(r0.optimizer, [phi], r0.lr, **r0.optimizer_kwargs)
    evals: list[list[tuple[int, str, str, float]]] = [[] for _ in range(K)]
    done: list[TrainOutcome | None] = [None] * K

    def record(ks: list[int], step: int) -> list[bool]:
        """Evaluate seeds ``ks`` together (one stacked forward); whether each stayed finite."""
        with torch.no_grad():
            thetas = torch.stack([reps[k].theta(phi.detach()[k]) for k in ks])
        outs = evaluate_stacked(net, thetas, data, c0.metrics, loss_fn, cfg.eval_batch_size)
        for k, out in zip(ks, outs):
            for key, value in out.items():
                split, metric = key.split("_", 1)
                evals[k].append((step, split, metric, value))
        return [all(math.isfinite(v) for v in out.values()) for out in outs]

    def finish(k: int, status: str, step: int, error: str | None = None) -> None:
        done[k] = TrainOutcome(status, summarize(evals[k], ctxs[k].metrics), evals[k], step, reps[k].d,
                               reps[k].info, error)

    record(list(range(K)), 0)
    step = 0
    for step in range(1, total + 1):
        idx = torch.stack([o[step - 1] for o in orders]).to(device)
        rows = idx.flatten()  # index_select: several times faster than x[idx] for a (K, batch) idx
        xb = data.x_train.index_select(0, rows).view(*idx.shape, *data.x_train.shape[1:])
        yb = data.y_train.index_select(0, rows).view(*idx.shape, *data.y_train.shape[1:])
        thetas = origins + cls.apply_stacked(ptens, phi, **static)
        losses = stacked_loss(loss_fn, net.stacked_forward(thetas, xb), yb)  # (K,), each seed's own
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        check_loss = step % 25 == 0
        check_eval = step % eval_every == 0 or step == total
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
