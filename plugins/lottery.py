"""Methods that use information from training to need fewer degrees of freedom (Larsen et al.
2022 §lottery subspaces and tickets; Frankle & Carbin 2019), and the pruning baselines.

- ``lottery-subspace``: θ = θ0 + U[:, :d] φ, U = top left singular vectors of the increments of
  one full-space momentum trajectory (one trajectory + SVD per seed, shared by every d ≤ d_max).
- ``lottery-ticket``: the paper's released one-shot procedure — pre-train, keep the d entries of
  θ with the largest |θ| (one global threshold), rewind them to θ0, retrain them.
- ``lottery-ticket-imp``: iterative magnitude pruning; every round is cached.
- ``magnitude-pruning``: the same mask, fine-tuned from the trained values (no rewind).
- ``random-pruning``: a random mask with d survivors, trained from θ0.

For every method d is the number of trainable scalars: the subspace dimension, or the number of
surviving entries of θ (the others are exactly zero). Preparation (trajectories, pre-training,
IMP rounds) goes through the artifact cache keyed by exactly what it depends on, so it runs once
per seed and is shared across d — and across methods with the same pre-training.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Literal

import torch
from pydantic import Field, model_validator

from dofbench.plugin import (
    AffineReparam, DenseProjection, DivergedError, DofbenchError, FlatNet, Method, MethodContext, Params,
    Projection, Reparam, SubspaceOptimizerParams, dense_bytes, dense_group_limit, derive_seed, hookimpl,
    steps_per_epoch, train_full,
)


# ------------------------------------------------------------------------------------ shared
def prep_key(ctx: MethodContext, **parts: Any) -> list[Any]:
    """Cache key of a preparation artifact: what θ0 and the data order depend on (model, dataset,
    seed), the batch size, and the given preparation parameters — not d, not the retraining
    optimizer, so methods with the same preparation share it."""
    return [*ctx.spec.init_key(), {"batch_size": ctx.train.batch_size, **parts}]


def prep_generator(purpose: str, key: list[Any]) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(purpose, *key))
    return g


def run_full(ctx: MethodContext, what: str, net, theta: torch.Tensor, **kwargs: Any):
    """:func:`train_full` where divergence is a failure of the method's preparation (recorded as
    'failed' with the reason), not evidence about d."""
    try:
        return train_full(net, theta, ctx.data, batch_size=ctx.train.batch_size,
                          loss_fn=ctx.loss_fn(), **kwargs)
    except DivergedError as exc:
        raise DofbenchError(f"{ctx.spec.method.name}: preparation ({what}) failed: {exc}; lower its "
                            f"learning rate") from None


class MaskedNet:
    """A :class:`FlatNet` seen through a 0/1 mask: forward(θ) = net.forward(θ ⊙ m), so gradients
    (and momentum) of pruned entries are exactly zero during masked full-space training."""

    def __init__(self, net: FlatNet, mask: torch.Tensor):
        self.net, self.mask = net, mask

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward(theta * self.mask, x)

    def __getattr__(self, name: str) -> Any:  # train(), training, D, … of the wrapped net
        return getattr(self.net, name)


def always_kept(net: FlatNet, prune_biases: bool, device: torch.device) -> torch.Tensor:
    """Bool mask of entries that never compete for the mask: the 1-D tensors (biases, norm
    scales/shifts) when ``prune_biases`` is False; nothing otherwise."""
    out = torch.zeros(net.D, dtype=torch.bool, device=device)
    if not prune_biases:
        for (_, a, b), shape in zip(net.segments(), net.shapes):
            if len(shape) <= 1:
                out[a:b] = True
    return out


def layer_ids(net: FlatNet, device: torch.device) -> torch.Tensor:
    """Index of the parameter tensor each entry of θ belongs to."""
    return torch.repeat_interleave(torch.arange(len(net.numels), device=device),
                                   torch.tensor(net.numels, device=device))


def allocate(counts: torch.Tensor, target: int) -> torch.Tensor:
    """Split ``target`` survivors over groups proportionally to ``counts`` (largest remainder)."""
    total = int(counts.sum())
    share = counts.double() * target / max(total, 1)
    out = share.floor().long()
    rest = target - int(out.sum())
    if rest > 0:
        order = torch.argsort(share - out, descending=True, stable=True)
        out[order[:rest]] += 1
    return torch.minimum(out, counts)


def magnitude_mask(values: torch.Tensor, candidates: torch.Tensor, keep: int,
                   groups: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask of the ``keep`` candidate entries with the largest |value|: one global
    threshold, or (``groups`` given) the same fraction of every group's candidates."""
    mask = torch.zeros_like(candidates)
    if keep <= 0:
        return mask
    score = values.abs().masked_fill(~candidates, -1.0)
    if groups is None:
        mask[torch.topk(score, keep).indices] = True
        return mask
    n_groups = int(groups.max()) + 1
    counts = torch.bincount(groups[candidates], minlength=n_groups)
    for g, k in enumerate(allocate(counts.cpu(), keep).tolist()):  # per tensor, not per entry
        if k:
            sel = (groups == g).nonzero().squeeze(1)
            mask[sel[torch.topk(score[sel], k).indices]] = True
    return mask


def code_threshold_mask(values: torch.Tensor, candidates: torch.Tensor, fraction: float) -> torch.Tensor:
    """The paper's released mask rule: with n candidate entries, k = ceil(fraction·n) (in float64,
    as the code computes it), t = the k-th largest |value| among the candidates, keep every
    candidate with |value| ≥ t — ties at t are all kept, so the mask may keep more than k."""
    mask = torch.zeros_like(candidates)
    n = int(candidates.sum())
    k = min(n, math.ceil(fraction * n))
    if k <= 0:
        return mask
    score = values.abs()[candidates]
    t = torch.topk(score, k).values[-1]
    return candidates & (values.abs() >= t)


def masked_reparam(ctx: MethodContext, mask: torch.Tensor, start: torch.Tensor, p: "ScheduleParams",
                   info: dict[str, Any], exact: bool = True) -> Reparam:
    """θ = scatter of φ into zeros at the surviving entries (one index op); φ0 = start[mask];
    momentum SGD with the paper's step schedule. ``exact``: the mask must keep exactly d entries
    (False for the released code's threshold rule, whose ties may keep more: they count in d_used)."""
    idx = mask.nonzero().squeeze(1).to(ctx.device)
    if exact and idx.numel() != ctx.d:
        raise DofbenchError(f"{ctx.spec.method.name}: the mask keeps {idx.numel()} entries, not d={ctx.d}")
    zeros = torch.zeros(ctx.D, device=ctx.device, dtype=ctx.theta0.dtype)

    def theta(phi: torch.Tensor) -> torch.Tensor:
        return zeros.index_put((idx,), phi)

    optimizer = "sgd-lr-in-buffer" if p.momentum_form == "lr-in-buffer" else "sgd"
    kept = idx.numel()
    return Reparam(phi0=start.to(ctx.device)[idx].clone(), theta=theta, optimizer=optimizer, lr=p.lr,
                   optimizer_kwargs={"momentum": p.momentum}, lr_schedule=p.schedule(),
                   info={"kept": kept, "kept_fraction": kept / ctx.D, **info})


def survivors(ctx: MethodContext, p: "MaskParams") -> tuple[torch.Tensor, int]:
    """(entries always kept, how many prunable entries survive) so that d entries are kept in all."""
    fixed = always_kept(ctx.net, p.prune_biases, ctx.device)
    return fixed, check_keep(ctx, fixed)


def check_keep(ctx: MethodContext, fixed: torch.Tensor) -> int:
    """How many prunable entries survive so that d entries are kept in all."""
    n_fixed = int(fixed.sum())
    if ctx.d < n_fixed:
        raise DofbenchError(
            f"{ctx.spec.method.name}: d={ctx.d} is below the {n_fixed} biases that prune_biases=false "
            f"always keeps; use d ≥ {n_fixed} or prune_biases=true")
    return ctx.d - n_fixed


# ------------------------------------------------------------------------------------ params
class ScheduleParams(Params):
    """Training of the surviving entries: heavy-ball momentum SGD with a step schedule."""

    lr: float = Field(0.1, gt=0, description="Initial learning rate of the (re)training after masking "
                      "(paper's ticket code: 0.1).")
    momentum: float = Field(0.9, ge=0, lt=1, description="Heavy-ball momentum (paper: 0.9).")
    lr_milestones: list[int] = Field(
        [400, 800, 1200], description="Steps at which the learning rate drops (paper: 400, 800, 1200).")
    lr_factors: list[float] = Field(
        [1.0, 0.3, 0.1, 0.03], description="lr multipliers before the first milestone, after the first, … "
        "(one more than lr_milestones; paper: 1, 0.3, 0.1, 0.03 → lr 0.1/0.03/0.01/0.003).")
    momentum_form: Literal["torch", "lr-in-buffer"] = Field(
        "torch", description="Heavy-ball form: 'torch' = torch's SGD, buf ← μ·buf + g, θ ← θ − lr·buf "
        "(an lr drop rescales the accumulated momentum at once); 'lr-in-buffer' = the paper's released "
        "code, buf ← μ·buf + lr·g, θ ← θ − buf (the momentum accumulated before a drop decays at the "
        "old lr). Equal while lr is constant.")

    @model_validator(mode="after")
    def _check_schedule(self):
        if len(self.lr_factors) != len(self.lr_milestones) + 1:
            raise ValueError("lr_factors must have exactly one more entry than lr_milestones")
        if any(b <= a for a, b in zip(self.lr_milestones, self.lr_milestones[1:])) or \
                any(m < 0 for m in self.lr_milestones):
            raise ValueError("lr_milestones must be non-negative and strictly increasing")
        if any(f <= 0 for f in self.lr_factors):
            raise ValueError("lr_factors must be positive")
        return self

    def schedule(self) -> Callable[[int], float]:
        milestones, factors, lr = list(self.lr_milestones), list(self.lr_factors), self.lr
        return lambda step: lr * factors[bisect.bisect_right(milestones, step)]


class MaskParams(ScheduleParams):
    prune_biases: bool = Field(
        True, description="Whether 1-D tensors (biases, norm scales) compete for the mask like weights "
        "(paper's released code: true). If false they are always kept, trained and counted in d.")


class PretrainParams(MaskParams):
    pretrain_epochs: float = Field(
        2.0, gt=0, description="Epochs of full-space training before masking (paper: 2); for IMP, "
        "the length of every round.")
    pretrain_lr: float = Field(5e-2, gt=0, description="Learning rate of the pre-training (paper: 0.05).")
    pretrain_momentum: float = Field(0.9, ge=0, lt=1, description="Momentum of the pre-training (paper: 0.9).")
    weight_decay: float = Field(1e-4, ge=0, description="L2 coefficient of the pre-training (paper: 1e-4).")
    weight_decay_on: Literal["conv-kernels", "weights", "all"] = Field(
        "conv-kernels", description="Which entries the L2 term applies to: tensors with more than 2 "
        "dimensions (paper: conv kernels only), all tensors with ≥ 2 dimensions, or everything.")

    def pretrain_parts(self) -> dict[str, Any]:
        return {"epochs": self.pretrain_epochs, "lr": self.pretrain_lr, "momentum": self.pretrain_momentum,
                "weight_decay": self.weight_decay, "weight_decay_on": self.weight_decay_on}


class OneShotMaskParams(PretrainParams):
    mask_rule: Literal["top-d", "threshold"] = Field(
        "top-d", description="'top-d' = exactly the d candidates of largest |θ_T| (ties broken by "
        "position); 'threshold' = the paper's released code: with f = (d − always kept)/n of the n "
        "candidates, keep every candidate with |θ_T| ≥ the ceil(f·n)-th largest value (ties at it all "
        "kept, so d_used may exceed d).")


class TicketParams(PretrainParams):
    rewind_step: int = Field(
        0, ge=0, description="Rewind the survivors to θ0 (0, the paper's procedure) or to θ_k, step k "
        "of the pre-training ('late rewinding', Frankle et al. 2019).")


class OneShotTicketParams(TicketParams, OneShotMaskParams):
    """The one-shot ticket's params: the pre-training, the rewind step, the mask rule."""


class ImpParams(TicketParams):
    prune_fraction: float = Field(
        0.2, gt=0, lt=1, description="Fraction p of the surviving prunable entries removed per round "
        "(Frankle & Carbin: 0.2). A trial's d defines its rounds: geometric rounds down to the last "
        "count above d, then one final round to exactly d.")
    scope: Literal["global", "layerwise"] = Field(
        "global", description="One magnitude threshold over all prunable entries, or the same "
        "fraction pruned from every parameter tensor.")
    max_rounds: int = Field(100, ge=1, description="Refuse a d that would need more pruning rounds.")


class LotterySubspaceParams(SubspaceOptimizerParams):
    d_max: int = Field(
        1024, ge=1, description="Largest d of the sweep: the trajectory runs sample_every·d_max steps "
        "and gives d_max directions shared by every d ≤ d_max of a seed (paper: the largest d "
        "tested). Trials with d > d_max are refused.")
    sample_every: int = Field(5, ge=1, description="Steps between stored trajectory increments (paper: 5).")
    basis: Literal["increments", "centered"] = Field(
        "increments", description="'increments': uncentered SVD of the d_max increments "
        "Δ_k = θ_{k·s} − θ_{(k−1)·s} (paper); 'centered': PCA of the d_max + 1 checkpoints centred "
        "on their mean (the 'low-dimensional trajectory' variant).")
    trajectory_lr: float = Field(5e-2, gt=0, description="Learning rate of the full-space trajectory (paper: 5e-2).")
    tie_trajectory_lr: bool = Field(
        False, description="Train the trajectory with the subspace's lr (the paper's released code has "
        "one lr for both) instead of trajectory_lr, which must then keep its default.")
    trajectory_schedule: Literal["every-k", "released-code"] = Field(
        "every-k", description="'every-k' = sample_every·d_max steps, θ kept at steps 0, s, 2s, …, "
        "s·d_max; 'released-code' = the paper's code: s·d_max + 1 steps, θ kept at 0, s + 1, 2s + 1, …, "
        "s·d_max + 1 (the first increment spans s + 1 steps).")
    svd_dtype: Literal["float32", "float64"] = Field(
        "float32", description="Precision of the SVD of the trajectory matrix (the paper's code: float64); "
        "the basis is stored in the network's dtype either way.")
    trajectory_momentum: float = Field(0.9, ge=0, lt=1, description="Heavy-ball momentum of the trajectory (paper: 0.9).")
    basis_budget_gb: float = Field(2.0, gt=0, description="Largest D×d_max trajectory matrix allowed, in GiB.")

    @model_validator(mode="after")
    def _tied_lr(self):
        if self.tie_trajectory_lr and self.trajectory_lr != type(self).model_fields["trajectory_lr"].default:
            raise ValueError("tie_trajectory_lr = true takes the trajectory's lr from lr; leave "
                             "trajectory_lr at its default")
        return self

    def effective_trajectory_lr(self) -> float:
        return self.lr if self.tie_trajectory_lr else self.trajectory_lr

    def snapshot_steps(self) -> list[int]:
        """The steps (after 0) at which the trajectory keeps θ; the last is its length."""
        s, extra = self.sample_every, (1 if self.trajectory_schedule == "released-code" else 0)
        return [k * s + extra for k in range(1, self.d_max + 1)]


# ------------------------------------------------------------------------------ lottery subspace
def trajectory(ctx: MethodContext, p: LotterySubspaceParams) -> list[torch.Tensor]:
    """θ at steps 0, s, 2s, …, s·d_max of full-space momentum training from θ0."""
    need = dense_bytes(ctx.D, p.d_max + 1)
    if need > p.basis_budget_gb * 1024**3:
        raise DofbenchError(
            f"lottery-subspace: the trajectory matrix (D={ctx.D} × d_max={p.d_max}) needs "
            f"{need / 1024**3:.1f} GiB, over basis_budget_gb={p.basis_budget_gb}; lower d_max")
    key = _trajectory_key(ctx, p)
    at = p.snapshot_steps()
    _, snaps = run_full(ctx, "the trajectory", ctx.net, ctx.theta0, steps=at[-1],
                        lr=p.effective_trajectory_lr(), momentum=p.trajectory_momentum, snapshot_steps=at,
                        generator=prep_generator("lottery-trajectory", key))
    return snaps


def _trajectory_key(ctx: MethodContext, p: LotterySubspaceParams) -> list[Any]:
    extra = {"schedule": p.trajectory_schedule} if p.trajectory_schedule != "every-k" else {}
    return prep_key(ctx, d_max=p.d_max, sample_every=p.sample_every, lr=p.effective_trajectory_lr(),
                    momentum=p.trajectory_momentum, **extra)


def basis_from_trajectory(snaps: list[torch.Tensor], basis: str, svd_dtype: str = "float32"
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(U, σ): orthonormal columns ordered by singular value, of the increments (uncentered) or of
    the mean-centred checkpoints; the SVD (and σ) in ``svd_dtype``, U in the snapshots' dtype."""
    m = torch.stack(snaps, dim=1)
    dtype = m.dtype
    m = m.to(getattr(torch, svd_dtype))
    m = m[:, 1:] - m[:, :-1] if basis == "increments" else m - m.mean(dim=1, keepdim=True)
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    if basis == "centered":  # centring removes one direction
        u, s = u[:, :-1], s[:-1]
    return u.to(dtype).contiguous(), s


def lottery_basis(ctx: MethodContext, p: LotterySubspaceParams) -> dict[str, torch.Tensor]:
    """The cached basis of this seed: {'U': D×min(D, d_max), 'sigma': singular values}."""
    def create() -> dict[str, torch.Tensor]:
        u, s = basis_from_trajectory(trajectory(ctx, p), p.basis, p.svd_dtype)
        return {"U": u.cpu(), "sigma": s.cpu()}

    dtype = [p.svd_dtype] if p.svd_dtype != "float32" else []
    return ctx.cache.get_or_create("lottery-basis", [*_trajectory_key(ctx, p), p.basis, *dtype], create)


class BasisProjection(DenseProjection):
    """θ-offset = U φ for a given D×d matrix U with orthonormal columns (a lottery basis); the
    dense projection's apply, so seeds can be trained together."""

    kind = "lottery-basis"

    def __init__(self, u: torch.Tensor):
        Projection.__init__(self, *u.shape)
        self.tensors = {"AT": u.t().contiguous()}


class LotterySubspace(Method):
    name = "lottery-subspace"
    description = ("θ = θ0 + U[:, :d] φ, U = top-d left singular vectors of one full-space training "
                   "trajectory (Larsen et al. 2022); nested in d.")
    Params = LotterySubspaceParams
    presets = {"paper-code": {"trajectory_schedule": "released-code", "svd_dtype": "float64",
                              "tie_trajectory_lr": True}}

    def max_dim(self, params: LotterySubspaceParams, total_params: int) -> int:
        return min(params.d_max, total_params)

    def check_dim(self, params: LotterySubspaceParams, total_params: int, d: int) -> str | None:
        need = dense_bytes(total_params, params.d_max + 1)
        if need > params.basis_budget_gb * 1024**3:
            return (f"the trajectory matrix (D={total_params} × d_max+1={params.d_max + 1}) needs "
                    f"{need / 1024**3:.1f} GiB, over basis_budget_gb={params.basis_budget_gb:g}; lower d_max")
        return None

    def nested(self, params: LotterySubspaceParams) -> bool:
        return True  # U[:, :d] of one SVD per seed

    def setup(self, ctx: MethodContext) -> Reparam:
        p: LotterySubspaceParams = ctx.params
        if ctx.d > self.max_dim(p, ctx.D):
            raise DofbenchError(f"lottery-subspace: d={ctx.d} exceeds d_max={p.d_max} (param d_max; "
                                f"allowed: 1 ≤ d ≤ min(d_max, D={ctx.D}))")
        art = lottery_basis(ctx, p)
        proj = BasisProjection(art["U"][:, :ctx.d].to(ctx.device))
        sigma = art["sigma"]
        theta0 = ctx.theta0
        energy = float(sigma[:ctx.d].pow(2).sum() / sigma.pow(2).sum().clamp_min(1e-30))
        return AffineReparam(phi0=theta0.new_zeros(ctx.d), theta=lambda phi: theta0 + proj(phi),
                             **p.optimizer_spec(),
                             info={"basis": p.basis, "d_max": p.d_max, "energy_fraction": energy},
                             origin=theta0, projection=proj)

    def batchable(self, params: LotterySubspaceParams) -> bool:
        return True

    def group_limit(self, params: LotterySubspaceParams, total_params: int, d: int, device: str) -> int:
        return dense_group_limit(total_params, d, device)  # the basis is a dense D×d matrix


# ------------------------------------------------------------------------------ pre-training
def decay_mask(net: FlatNet, on: str, device: torch.device) -> torch.Tensor:
    """1 where the pre-training's L2 term applies: conv kernels (> 2 dims), weights (≥ 2) or all."""
    out = torch.zeros(net.D, device=device)
    for (_, a, b), shape in zip(net.segments(), net.shapes):
        if on == "all" or (on == "weights" and len(shape) >= 2) or (on == "conv-kernels" and len(shape) > 2):
            out[a:b] = 1.0
    return out


def pretrain_steps(ctx: MethodContext, p: PretrainParams) -> int:
    return max(1, math.ceil(p.pretrain_epochs * steps_per_epoch(len(ctx.data.y_train), ctx.train.batch_size)))


def masked_train(ctx: MethodContext, p: PretrainParams, start: torch.Tensor, mask: torch.Tensor,
                 what: str, key: list[Any], steps: int | None = None) -> torch.Tensor:
    """Momentum SGD (with the pre-training's L2) of the surviving entries from ``start``, for the
    pre-training length or ``steps``; pruned entries are exactly zero in the result."""
    maskf = mask.to(start.dtype)
    net = MaskedNet(ctx.net, maskf) if not bool(mask.all()) else ctx.net
    theta, _ = run_full(ctx, what, net, start * maskf, steps=steps or pretrain_steps(ctx, p),
                        lr=p.pretrain_lr, momentum=p.pretrain_momentum, weight_decay=p.weight_decay,
                        decay_mask=decay_mask(ctx.net, p.weight_decay_on, ctx.device) * maskf,
                        generator=prep_generator(what, key))
    return theta * maskf


def pretrained(ctx: MethodContext, p: PretrainParams, rewind_step: int = 0) -> dict[str, torch.Tensor]:
    """The cached dense pre-training of this seed: {'theta': θ_T, 'rewind': θ0 or θ_k}."""
    key = prep_key(ctx, pretrain=p.pretrain_parts(), rewind_step=rewind_step)
    full = torch.ones(ctx.D, dtype=torch.bool, device=ctx.device)

    def create() -> dict[str, torch.Tensor]:
        if rewind_step > pretrain_steps(ctx, p):
            raise DofbenchError(f"{ctx.spec.method.name}: rewind_step={rewind_step} exceeds the "
                                f"{pretrain_steps(ctx, p)} pre-training steps")
        theta = masked_train(ctx, p, ctx.theta0, full, "pretrain", key)
        # θ_k: the first k steps of the same run (same data order, deterministic), recomputed
        # rather than snapshotting every k steps of the whole pre-training
        rewind = masked_train(ctx, p, ctx.theta0, full, "pretrain", key, steps=rewind_step) \
            if rewind_step else ctx.theta0
        return {"theta": theta.cpu(), "rewind": rewind.cpu()}

    return ctx.cache.get_or_create("lottery-pretrain", key, create)


# ------------------------------------------------------------------------------ tickets
def one_shot_mask(values: torch.Tensor, candidates: torch.Tensor, keep: int, rule: str) -> torch.Tensor:
    """``keep`` of the candidates by |value|: exactly (``top-d``) or by the released code's
    threshold (``threshold``: f = keep / n, ties kept)."""
    if rule == "threshold":
        return code_threshold_mask(values, candidates, keep / max(int(candidates.sum()), 1))
    return magnitude_mask(values, candidates, keep)


class LotteryTicket(Method):
    name = "lottery-ticket"
    description = ("One-shot lottery ticket (paper's released procedure): pre-train, keep the d entries "
                   "with the largest |θ| (global), rewind them to θ0, retrain with a step schedule.")
    Params = OneShotTicketParams
    presets = {"paper-code": {"momentum_form": "lr-in-buffer", "mask_rule": "threshold"}}

    def setup(self, ctx: MethodContext) -> Reparam:
        p: OneShotTicketParams = ctx.params
        fixed, keep = survivors(ctx, p)
        art = pretrained(ctx, p, p.rewind_step)
        mask = fixed | one_shot_mask(art["theta"].to(ctx.device), ~fixed, keep, p.mask_rule)
        info = {"mask": "one-shot-global", "rewind_step": p.rewind_step,
                **({"mask_rule": "threshold"} if p.mask_rule == "threshold" else {})}
        return masked_reparam(ctx, mask, art["rewind"], p, info, exact=p.mask_rule == "top-d")


def imp_targets(prunable: int, keep: int, p: ImpParams) -> list[int]:
    """Survivor counts of the prunable entries per round: t_0 = all, t_{r+1} = round(t_r·(1−p))
    (strictly decreasing) while above ``keep``, then ``keep``."""
    t = [prunable]
    while t[-1] > keep:
        nxt = min(t[-1] - 1, round(t[-1] * (1 - p.prune_fraction)))
        t.append(max(nxt, keep))
    return t


class LotteryTicketIMP(Method):
    name = "lottery-ticket-imp"
    description = ("Iterative magnitude pruning (Frankle & Carbin 2019): train → prune a fraction p "
                   "of the survivors → rewind → repeat until d entries are left; every round cached.")
    Params = ImpParams

    def setup(self, ctx: MethodContext) -> Reparam:
        p: ImpParams = ctx.params
        fixed, keep = survivors(ctx, p)
        targets = imp_targets(int((~fixed).sum()), keep, p)
        if len(targets) - 1 > p.max_rounds:
            raise DofbenchError(f"lottery-ticket-imp: d={ctx.d} needs {len(targets) - 1} rounds, over "
                                f"max_rounds={p.max_rounds}; raise max_rounds or prune_fraction")
        rnd = imp_round(ctx, p, fixed, targets, len(targets) - 2) if len(targets) > 1 else None
        if rnd is None:  # nothing to prune: d = D
            art = pretrained(ctx, p, p.rewind_step)
            mask = torch.ones(ctx.D, dtype=torch.bool, device=ctx.device)
        else:
            art = rnd
            mask = self.prune(ctx, p, art, fixed, keep)
        rewind = pretrained(ctx, p, p.rewind_step)["rewind"]
        return masked_reparam(ctx, mask, rewind, p, {"mask": f"imp-{p.scope}",
                                                     "rounds": len(targets) - 1, "rewind_step": p.rewind_step})

    @staticmethod
    def prune(ctx: MethodContext, p: ImpParams, art: dict[str, torch.Tensor], fixed: torch.Tensor,
              keep: int) -> torch.Tensor:
        theta, mask = art["theta"].to(ctx.device), art["mask"].to(ctx.device)
        groups = layer_ids(ctx.net, ctx.device) if p.scope == "layerwise" else None
        return fixed | magnitude_mask(theta, mask & ~fixed, keep, groups)


def imp_round(ctx: MethodContext, p: ImpParams, fixed: torch.Tensor, targets: list[int], r: int
              ) -> dict[str, torch.Tensor]:
    """Round r of IMP, cached: {'mask': survivors after r prunings, 'theta': the network trained
    from the rewind point with that mask}. Round 0 is the dense pre-training. A missing round is
    computed from the previous one, so a longer sweep reuses shorter ones and an interrupted sweep
    resumes from the last finished round."""
    base = prep_key(ctx, pretrain=p.pretrain_parts(), rewind_step=p.rewind_step,
                    imp={"p": p.prune_fraction, "scope": p.scope, "prune_biases": p.prune_biases})
    if r == 0:
        art = pretrained(ctx, p, p.rewind_step)
        return {"theta": art["theta"], "mask": torch.ones(ctx.D, dtype=torch.bool)}

    def create() -> dict[str, torch.Tensor]:
        prev = imp_round(ctx, p, fixed, targets, r - 1)
        mask = LotteryTicketIMP.prune(ctx, p, prev, fixed, targets[r])
        rewind = pretrained(ctx, p, p.rewind_step)["rewind"].to(ctx.device)
        theta = masked_train(ctx, p, rewind, mask, f"imp-round-{r}", [*base, r])
        return {"theta": theta.cpu(), "mask": mask.cpu()}

    # the counts of rounds 1..r depend only on the prunable total and p, never on the trial's d
    return ctx.cache.get_or_create("lottery-imp-round", [*base, r, targets[r]], create)


# ------------------------------------------------------------------------------ pruning baselines
class MagnitudePruning(Method):
    name = "magnitude-pruning"
    description = ("Pre-train, keep the d entries with the largest |θ| (global), fine-tune them from "
                   "their trained values (no rewind).")
    Params = OneShotMaskParams

    def setup(self, ctx: MethodContext) -> Reparam:
        p: OneShotMaskParams = ctx.params
        fixed, keep = survivors(ctx, p)
        theta = pretrained(ctx, p)["theta"].to(ctx.device)
        mask = fixed | one_shot_mask(theta, ~fixed, keep, p.mask_rule)
        info = {"mask": "magnitude-global", "start": "trained",
                **({"mask_rule": "threshold"} if p.mask_rule == "threshold" else {})}
        return masked_reparam(ctx, mask, theta, p, info, exact=p.mask_rule == "top-d")


class RandomPruning(Method):
    name = "random-pruning"
    description = "A random mask with d survivors, trained from θ0 (the floor every method must beat)."
    Params = MaskParams

    def setup(self, ctx: MethodContext) -> Reparam:
        p: MaskParams = ctx.params
        fixed, keep = survivors(ctx, p)
        score = torch.rand(ctx.D, generator=ctx.generator("random-mask", ctx.d)).to(ctx.device)
        mask = fixed | magnitude_mask(score, ~fixed, keep)
        return masked_reparam(ctx, mask, ctx.theta0, p, {"mask": "random"})


@hookimpl
def dofbench_methods():
    return [LotterySubspace(), LotteryTicket(), LotteryTicketIMP(), MagnitudePruning(), RandomPruning()]
