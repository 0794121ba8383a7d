"""Subspace methods: training in a random affine subspace θ = θ0 + Aφ (Li et al. 2018;
Larsen et al. 2022 §random affine subspaces), in a burn-in affine subspace θ = θ_t + Aφ
(Larsen et al. 2022 §burn-in), and full training as the d = D reference."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from dofbench.plugin import (
    MAX_GROUP, AffineReparam, Method, MethodContext, Params, ProjectionKind, Reparam, SubspaceOptimizerParams,
    dense_bytes, dense_group_limit, derive_seed, hookimpl, make_projection, resolve_kind, train_full,
)


class SubspaceParams(SubspaceOptimizerParams):
    projection: ProjectionKind = Field(
        "dense", description="Random projection A: 'dense' = the paper's i.i.d. Gaussian columns "
        "scaled to unit norm (stores D×d floats); 'orthonormal' = the same with orthonormalised "
        "columns; 'sparse' = Li et al.'s very sparse ±1 projection (density 1/sqrt(layer size)), "
        "columns normalised; 'fastfood' = Li et al.'s Fastfood transform (O(D) memory, unit-norm "
        "columns in expectation); 'auto' = dense while the matrix is at most auto_dense_mb, "
        "fastfood beyond (the resolved choice is stored in method_info).")
    dense_budget_gb: float = Field(2.0, gt=0, description="Largest dense projection matrix allowed, in GiB.")
    auto_dense_mb: float = Field(
        64.0, ge=0, description="projection='auto' uses dense while the D×d float32 matrix is at "
        "most this many MiB (one matrix product is the fastest map there), fastfood beyond.")
    nested: bool = Field(
        False, description="Nested subspaces: one projection per seed whose first d columns are the "
        "d-dimensional subspace (dense/orthonormal: columns drawn in reproducible blocks; sparse: the "
        "same per block; fastfood: one transform of size 2^ceil(log2 D)), so span(A_d) grows with d and "
        "success is monotone in d per seed; each A_d is still marginally the paper's random subspace. "
        "False: a fresh A per (seed, d), as in the paper. Needs a fixed projection (not auto).")

    @model_validator(mode="after")
    def _nested_needs_a_fixed_kind(self) -> "SubspaceParams":
        if self.nested and self.projection == "auto":
            raise ValueError("nested = true needs a fixed projection (dense, orthonormal, sparse or fastfood), "
                             "not 'auto', which switches kind as d grows")
        return self


def subspace_group_limit(p: SubspaceParams, D: int, d: int, device: str) -> int:
    """Seeds per batched group: for dense projections (also 'auto' when it resolves to dense)
    :func:`dofbench.plugin.dense_group_limit` (on CPU, one at a time once the matrix is large);
    for the others a full group."""
    kind = resolve_kind(p.projection, D, d, auto_dense_bytes=int(p.auto_dense_mb * 1024**2))
    return dense_group_limit(D, d, device) if kind in ("dense", "orthonormal") else MAX_GROUP


def projection_seed(ctx: MethodContext) -> torch.Generator:
    """Generator of A: depends on (model, dataset, seed, d) only — not on the method or its
    optimizer — so random-subspace and burn-in-subspace at t = 0 draw the same A, and variants
    that differ only in the optimizer are compared on the same subspace."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed("projection", *ctx.spec.init_key(), ctx.d))
    return g


def nested_projection_seed(ctx: MethodContext) -> int:
    """Seed of a seed's one nested projection: (model, dataset, seed) — not d, not the method."""
    return derive_seed("nested-projection", *ctx.spec.init_key())


def subspace_reparam(ctx: MethodContext, p: SubspaceParams, origin: torch.Tensor,
                     info: dict[str, Any] | None = None) -> AffineReparam:
    """θ = origin + Aφ with a fresh A per (seed, d) — or, with ``nested``, the first d columns of the
    seed's one projection — φ0 = 0; the resolved projection goes into the trial's method_info."""
    proj = make_projection(p.projection, ctx.D, ctx.d, None if p.nested else projection_seed(ctx), ctx.device,
                           segments=ctx.net.numels, budget_bytes=int(p.dense_budget_gb * 1024**3),
                           auto_dense_bytes=int(p.auto_dense_mb * 1024**2),
                           nested_seed=nested_projection_seed(ctx) if p.nested else None)
    origin = origin.to(ctx.device)
    return AffineReparam(
        phi0=origin.new_zeros(ctx.d), theta=lambda phi: origin + proj(phi), **p.optimizer_spec(),
        info={**proj.info(), "projection_requested": p.projection, **({"nested": True} if p.nested else {}),
              **(info or {})},
        origin=origin, projection=proj)


class SubspaceMethod(Method):
    """A method training θ = origin + Aφ with a random projection: seeds can be trained
    together, as many as the projection makes worth it."""

    def batchable(self, params: SubspaceParams) -> bool:
        return True

    def group_limit(self, params: SubspaceParams, total_params: int, d: int, device: str) -> int:
        return subspace_group_limit(params, total_params, d, device)

    def check_dim(self, params: SubspaceParams, total_params: int, d: int) -> str | None:
        kind = resolve_kind(params.projection, total_params, d, auto_dense_bytes=int(params.auto_dense_mb * 1024**2))
        need, budget = dense_bytes(total_params, d), params.dense_budget_gb * 1024**3
        if kind in ("dense", "orthonormal") and need > budget:
            return (f"projection: a dense {total_params}×{d} matrix needs {need / 1024**3:.3g} GiB, over "
                    f"dense_budget_gb={params.dense_budget_gb:g}; use projection = \"fastfood\" or \"sparse\" (or "
                    "\"auto\"), a smaller d, or a larger dense_budget_gb")
        return None

    def nested(self, params: SubspaceParams) -> bool:
        return params.nested


class RandomSubspace(SubspaceMethod):
    name = "random-subspace"
    description = "θ = θ0 + Aφ with a random A ∈ R^{D×d}; φ starts at 0 (Li et al. 2018)."
    Params = SubspaceParams
    presets = {"paper-code": {}}  # its defaults are the released code's (paper-adam, dense Gaussian A)
    yardstick = True  # comparisons say how many times fewer dimensions than random subspaces

    def setup(self, ctx: MethodContext) -> Reparam:
        return subspace_reparam(ctx, ctx.params, ctx.theta0)


class BurnInParams(SubspaceParams):
    steps: int = Field(0, ge=0, description="Burn-in length t: full-space steps before the subspace "
                       "is drawn through θ_t (paper sweeps 0, 4, 16, 64, 256; t = 0 is random-subspace).")
    burn_in_lr: float | None = Field(None, gt=0, description="Learning rate of the burn-in steps "
                                     "(None: the same as lr, as in the paper).")
    momentum: float = Field(0.9, ge=0, lt=1, description="Heavy-ball momentum of the burn-in (paper: 0.9).")
    extra_step: bool = Field(False, description="Take t + 1 burn-in steps, as the paper's released "
                             "code does (its loop runs t + 1 times); False = exactly t steps, as the text says.")


def burn_in_point(ctx: MethodContext, steps: int, lr: float, momentum: float) -> torch.Tensor:
    """θ_t: ``steps`` full-space heavy-ball steps from θ0 (SGD with momentum, no weight decay,
    the suite's batch size, a data order of its own). Cached as artifact kind 'burn-in' under
    (model, dataset, seed, batch size, steps, lr, momentum): computed once per (seed, t) and
    shared by every d, projection and subspace optimizer — and by any method that reuses it."""
    if steps == 0:
        return ctx.theta0
    key = [*ctx.spec.init_key(), {"batch_size": ctx.train.batch_size, "steps": steps, "lr": lr,
                                  "momentum": momentum}]

    def create() -> torch.Tensor:
        g = torch.Generator(device="cpu")
        g.manual_seed(derive_seed("burn-in-order", *key))
        theta, _ = train_full(ctx.net, ctx.theta0, ctx.data, steps=steps, lr=lr, momentum=momentum,
                              batch_size=ctx.train.batch_size, generator=g, loss_fn=ctx.loss_fn())
        return theta.cpu()

    return ctx.cache.get_or_create("burn-in", key, create).to(ctx.device)


class BurnInSubspace(SubspaceMethod):
    name = "burn-in-subspace"
    description = ("θ = θ_t + Aφ: t full-space momentum steps from θ0, then a random affine subspace "
                   "through θ_t (Larsen et al. 2022); t = 0 is random-subspace.")
    Params = BurnInParams
    presets = {"paper-code": {"extra_step": True}}

    def setup(self, ctx: MethodContext) -> Reparam:
        p: BurnInParams = ctx.params
        steps = p.steps + (1 if p.extra_step else 0)
        lr = p.burn_in_lr if p.burn_in_lr is not None else p.lr
        origin = burn_in_point(ctx, steps, lr, p.momentum)
        return subspace_reparam(ctx, p, origin, info={"burn_in_steps": steps, "burn_in_lr": lr})


class FullParams(Params):
    optimizer: Literal["paper-adam", "adam", "sgd"] = Field("adam", description="Optimizer of θ.")
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd only).")


class Full(Method):
    name = "full"
    description = "Ordinary training of all D parameters (the d = D reference; the suite's dims do not apply)."
    Params = FullParams
    baseline = True

    def fixed_dim(self, params, total_params):
        return total_params

    def setup(self, ctx: MethodContext) -> Reparam:
        p = ctx.params
        kwargs = {"momentum": p.momentum} if p.optimizer == "sgd" else {}
        return Reparam(phi0=ctx.theta0.clone(), theta=lambda phi: phi, optimizer=p.optimizer, lr=p.lr,
                       optimizer_kwargs=kwargs, info={"projection": "identity"})


@hookimpl
def dofbench_methods():
    return [RandomSubspace(), BurnInSubspace(), Full()]
