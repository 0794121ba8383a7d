"""Subspace methods: training in a random affine subspace θ = θ0 + Aφ (Li et al. 2018;
Larsen et al. 2022 §random affine subspaces), and full training as the d = D reference."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dofbench.components import Method, Params
from dofbench.hookspecs import hookimpl
from dofbench.projections import DenseProjection
from dofbench.trainer import MethodContext, Reparam


class SubspaceParams(Params):
    projection: Literal["dense", "orthonormal"] = Field(
        "dense", description="Random projection A: 'dense' = the paper's i.i.d. Gaussian columns "
        "scaled to unit norm; 'orthonormal' = the same with orthonormalised columns.")
    optimizer: Literal["paper-adam", "adam"] = Field(
        "paper-adam", description="Optimizer of φ: 'paper-adam' = Adam with the constant bias "
        "correction of the paper's code; 'adam' = torch.optim.Adam.")
    lr: float = Field(5e-2, gt=0, description="Learning rate (paper: 5e-2).")
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam β1 (paper: 0.9).")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam β2 (paper: 0.999).")
    eps: float = Field(1e-7, gt=0, description="Adam ε (paper: 1e-7).")
    dense_budget_gb: float = Field(2.0, gt=0, description="Largest dense projection matrix allowed, in GiB.")


def subspace_reparam(ctx: MethodContext, p: SubspaceParams, origin) -> Reparam:
    """θ = origin + Aφ with a fresh A per (seed, d), φ0 = 0."""
    proj = DenseProjection(ctx.D, ctx.d, ctx.generator("projection", ctx.d), ctx.device,
                           orthonormal=p.projection == "orthonormal",
                           budget_bytes=int(p.dense_budget_gb * 1024**3))
    origin = origin.to(ctx.device)
    return Reparam(
        phi0=origin.new_zeros(ctx.d), theta=lambda phi: origin + proj(phi),
        optimizer=p.optimizer, lr=p.lr,
        optimizer_kwargs={"betas": (p.beta1, p.beta2), "eps": p.eps},
        info={"projection": proj.kind, "projection_bytes": proj.memory_bytes})


class RandomSubspace(Method):
    name = "random-subspace"
    description = "θ = θ0 + Aφ with a random A ∈ R^{D×d}; φ starts at 0 (Li et al. 2018)."
    Params = SubspaceParams

    def setup(self, ctx: MethodContext) -> Reparam:
        return subspace_reparam(ctx, ctx.params, ctx.theta0)


class FullParams(Params):
    optimizer: Literal["paper-adam", "adam", "sgd"] = Field("adam", description="Optimizer of θ.")
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd only).")


class Full(Method):
    name = "full"
    description = "Ordinary training of all D parameters (the d = D reference; the suite's dims do not apply)."
    Params = FullParams

    def fixed_dim(self, params, total_params):
        return total_params

    def setup(self, ctx: MethodContext) -> Reparam:
        p = ctx.params
        kwargs = {"momentum": p.momentum} if p.optimizer == "sgd" else {}
        return Reparam(phi0=ctx.theta0.clone(), theta=lambda phi: phi, optimizer=p.optimizer, lr=p.lr,
                       optimizer_kwargs=kwargs, info={"projection": "identity"})


@hookimpl
def dofbench_methods():
    return [RandomSubspace(), Full()]
