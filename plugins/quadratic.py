"""Quadratic wells: a model/dataset pair whose training loss is exactly ½ (θ − θ*)ᵀ H (θ − θ*).

The dataset ``quadratic-well`` fixes the landscape: D, H's spectrum (H diagonal, which loses no
generality for random Gaussian subspaces, whose law is rotation invariant) and θ* = 0. Its single
"example" carries the eigenvalues as the target; its loss function is the quadratic. The model
``quadratic-point`` is a free parameter vector θ ∈ R^D that starts at distance R from θ*
(θ0 = R·u, u uniform on the sphere, drawn from the trial's init seed). Training it in random
subspaces with the shared trainer gives P_s(d, ε) for success = loss ≤ ε (metric ``loss``), to set
beside the theory's prediction (``dofbench theory``, :mod:`dofbench.analysis.theory`).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from dofbench.plugin import DataBundle, Dataset, DatasetInfo, DofbenchError, Model, Params, hookimpl, spectrum

TASK = "quadratic"


class QuadraticWellParams(Params):
    dim: int = Field(1000, ge=2, le=100_000, description="D, the number of parameters.")
    spectrum: Literal["bimodal", "power-law", "flat"] = Field(
        "bimodal", description="Eigenvalues of H: 'bimodal' = k eigenvalues lambda_k among D − k "
        "eigenvalues lambda_rest; 'power-law' = lambda_max·i^(−alpha), i = 1..D; 'flat' = all lambda_max.")
    k: int = Field(50, ge=0, description="Bimodal: how many eigenvalues equal lambda_k.")
    lambda_k: float = Field(1.0, gt=0, description="Bimodal: the k distinguished eigenvalues (stiff directions).")
    lambda_rest: float = Field(1e-4, gt=0, description="Bimodal: the other D − k eigenvalues.")
    lambda_max: float = Field(1.0, gt=0, description="Power-law and flat: the largest eigenvalue.")
    alpha: float = Field(1.0, gt=0, description="Power-law exponent.")

    @model_validator(mode="after")
    def _k_at_most_dim(self) -> "QuadraticWellParams":
        if self.spectrum == "bimodal" and self.k > self.dim:
            raise ValueError(f"k must be ≤ dim={self.dim} (got {self.k})")
        return self

    def eigenvalues(self) -> torch.Tensor:
        lam = spectrum(self.spectrum, self.dim, k=self.k, lambda_k=self.lambda_k,
                       lambda_rest=self.lambda_rest, lambda_max=self.lambda_max, alpha=self.alpha)
        return torch.as_tensor(lam, dtype=torch.float32)


def quadratic_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """½ Σ λ_i θ_i² per example (outputs = θ, targets = the eigenvalues), averaged."""
    return 0.5 * (targets * outputs * outputs).sum(dim=-1).mean()


class QuadraticWell(Dataset):
    name = "quadratic-well"
    description = "Loss ½ (θ − θ*)ᵀ H (θ − θ*) with a configured spectrum of H (θ* = 0); pair with model quadratic-point."
    Params = QuadraticWellParams

    def info(self, p: QuadraticWellParams) -> DatasetInfo:
        return DatasetInfo((p.dim,), 0, 1, 1, "synthetic quadratic well", task=TASK)

    def quadratic_spectrum(self, p: QuadraticWellParams):
        return p.eigenvalues().double().numpy()

    def load(self, p: QuadraticWellParams, *, data_root=None, download=False) -> DataBundle:
        lam = p.eigenvalues()[None, :]
        x = torch.zeros(1, 1)
        return DataBundle(x, lam, x.clone(), lam.clone(), self.info(p), loss=quadratic_loss)


class PointParams(Params):
    R: float = Field(1.0, gt=0, description="Initial distance ‖θ0 − θ*‖ (θ0 = R·u, u uniform on the sphere).")
    far_share: float = Field(0.0, ge=0, le=1, description=(
        "Bimodal seeds: this share of seeds (each seed drawn with this probability from its init seed) "
        "starts at distance R_far instead of R, so their first successful dimension is much larger — "
        "P_s(d) then plateaus below 1 between the two modes. 0: every seed at R."))
    R_far: float = Field(4.0, gt=0, description="The initial distance of the far seeds (far_share > 0).")


class Point(nn.Module):
    def __init__(self, D: int, R: float, far_share: float = 0.0, R_far: float = 4.0):
        super().__init__()
        u = torch.randn(D)
        if far_share > 0 and float(torch.rand(())) < far_share:  # drawn after u: R's seeds keep their θ0 direction
            R = R_far
        self.theta = nn.Parameter(R * u / u.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta.expand(x.shape[0], -1)


class QuadraticPoint(Model):
    name = "quadratic-point"
    description = "A free point θ ∈ R^D starting at distance R from the minimum (for dataset quadratic-well)."
    Params = PointParams

    def build(self, params: PointParams, info: DatasetInfo) -> nn.Module:
        if info.task != TASK:
            raise DofbenchError(f"model quadratic-point needs a dataset of task {TASK!r} (e.g. quadratic-well), "
                                f"got task {info.task!r}")
        return Point(info.input_shape[0], params.R, params.far_share, params.R_far)

    def initial_distance(self, params: PointParams) -> float | None:
        return float(params.R) if params.far_share == 0 else None  # bimodal seeds: no single R


@hookimpl
def dofbench_models():
    return [QuadraticPoint()]


@hookimpl
def dofbench_datasets():
    return [QuadraticWell()]
