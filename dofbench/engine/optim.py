"""Optimizers for φ. ``paper-adam`` is the optimizer of Larsen et al.'s released code: Adam with a
*constant* bias correction m/(1−β1), v/(1−β2) instead of m/(1−β1^t), v/(1−β2^t)."""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from pydantic import Field

from dofbench.config.schemas import Params

class PaperAdam(torch.optim.Optimizer):
    """Adam with constant bias correction (Larsen et al. 2022, released code).

    update = lr · (m / (1 − β1)) / (sqrt(v / (1 − β2)) + eps); equals standard Adam times a
    learning-rate factor that rises to ≈2.07 near step 10 and settles at ≈0.316.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 5e-2,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self.update()
        return loss

    @torch.no_grad()
    def update(self) -> None:
        """The step itself, without what ``torch.optim.Optimizer`` wraps around every ``step``
        call (a profiler range and the step hooks, about 0.1 ms a call on a laptop's core —
        several % of a small subspace step): the training loop, which registers no hooks,
        calls this."""
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                m, v = st["m"], st["v"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v / (1 - b2)).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1))


class LrInBufferSGD(torch.optim.Optimizer):
    """Heavy-ball momentum with the learning rate inside the buffer, as the paper's released
    lottery-ticket code (optax-style ``trace`` of lr-scaled gradients):
    buf ← μ·buf + lr·g, θ ← θ − buf. torch's SGD keeps lr outside (buf ← μ·buf + g,
    θ ← θ − lr·buf): the two agree while lr is constant, but after an lr drop torch rescales the
    accumulated momentum at once while this form lets it decay at the old scale."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.1, momentum: float = 0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["buf"] = torch.zeros_like(p)
                buf = st["buf"]
                buf.mul_(group["momentum"]).add_(p.grad, alpha=group["lr"])
                p.sub_(buf)
        return loss


def make_optimizer(name: str, params: Iterable[torch.Tensor], lr: float, *,
                   momentum: float = 0.9, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7) -> torch.optim.Optimizer:
    if name == "paper-adam":
        return PaperAdam(params, lr=lr, betas=betas, eps=eps)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "sgd-lr-in-buffer":
        if weight_decay:
            raise ValueError("sgd-lr-in-buffer takes no weight_decay")
        return LrInBufferSGD(params, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; allowed: paper-adam, adam, sgd, sgd-lr-in-buffer")


class SubspaceOptimizerParams(Params):
    """The optimizer of φ shared by every subspace method (the paper's defaults)."""

    optimizer: Literal["paper-adam", "adam"] = Field(
        "paper-adam", description="Optimizer of φ: 'paper-adam' = Adam with the constant bias "
        "correction of the paper's code; 'adam' = torch.optim.Adam.")
    lr: float = Field(5e-2, gt=0, description="Learning rate (paper: 5e-2).")
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam β1 (paper: 0.9).")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam β2 (paper: 0.999).")
    eps: float = Field(1e-7, gt=0, description="Adam ε (paper: 1e-7).")

    def optimizer_spec(self) -> dict:
        """The optimizer fields of a :class:`dofbench.plugin.Reparam`."""
        return {"optimizer": self.optimizer, "lr": self.lr,
                "optimizer_kwargs": {"betas": (self.beta1, self.beta2), "eps": self.eps}}
