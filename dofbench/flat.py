"""A network seen as a function of one flat parameter vector θ ∈ R^D.

Nothing per-parameter happens in Python inside a training step beyond one ``split``: θ is one
tensor, and :meth:`FlatNet.forward` unflattens it into views and calls the module with
``torch.func.functional_call``. Buffers (e.g. BatchNorm running statistics) are not parameters:
they are not counted in D and are passed to the module as they are.

BatchNorm under the functional trainer: the module's mode decides which statistics are used.
Training steps run in train mode (:meth:`FlatNet.train`): BatchNorm normalises with the batch's
statistics and updates its running mean and variance in place in :attr:`FlatNet.buffers` (an
exponential average with the layer's momentum, never differentiated). :func:`dofbench.trainer.
evaluate` switches to eval mode for the full-set evaluations (running statistics used, not
updated) and restores the previous mode, so outside ``evaluate`` a network is always in train mode
(as built), also in :func:`dofbench.trainer.train_full`. :meth:`FlatNet.reset_buffers` restores the buffers
captured at construction; :func:`dofbench.trainer.train_reparam` calls it at the start of every
trial, so each trial's statistics come from its own training steps only.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call


class FlatNet:
    def __init__(self, module: nn.Module):
        self.module = module
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.D = int(sum(self.numels))
        self.buffers = dict(module.named_buffers())
        self.initial_buffers = {n: b.detach().clone() for n, b in self.buffers.items()}

    def train(self, mode: bool = True) -> "FlatNet":
        """Train mode (BatchNorm uses and updates batch statistics) or eval mode (running ones)."""
        self.module.train(mode)
        return self

    @property
    def training(self) -> bool:
        return self.module.training

    def reset_buffers(self) -> None:
        """Restore every buffer (BatchNorm running statistics) to its value at construction."""
        with torch.no_grad():
            for n, b in self.buffers.items():
                b.copy_(self.initial_buffers[n])

    def flatten(self) -> torch.Tensor:
        """θ of the module's current parameters, as one detached flat tensor."""
        params = dict(self.module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(theta, self.numels), self.shapes)}

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, (self.unflatten(theta), self.buffers), (x,), strict=False)

    def segments(self) -> list[tuple[str, int, int]]:
        """(name, start, stop) of each parameter tensor inside θ."""
        out, start = [], 0
        for n, k in zip(self.names, self.numels):
            out.append((n, start, start + k))
            start += k
        return out


def count_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def lecun_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Truncated-free LeCun normal: N(0, 1/fan_in), as JAX/Flax ``lecun_normal`` up to truncation."""
    fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
    with torch.no_grad():
        return tensor.normal_(0.0, 1.0 / math.sqrt(max(fan_in, 1)), generator=generator)
