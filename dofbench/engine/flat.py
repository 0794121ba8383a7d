"""A network seen as a function of one flat parameter vector θ ∈ R^D.

Nothing per-parameter happens in Python inside a training step beyond one ``split``: θ is one
tensor, and :meth:`FlatNet.forward` unflattens it into views and calls the module with
``torch.func.functional_call`` (a plain stack of linear layers runs its layers on the views
directly). Buffers (e.g. BatchNorm running statistics) are not parameters:
they are not counted in D and are passed to the module as they are.

BatchNorm under the functional training loop: the module's mode decides which statistics are
used. Training steps run in train mode (:meth:`FlatNet.train`): BatchNorm normalises with the
batch's statistics and updates its running mean and variance in place in :attr:`FlatNet.buffers`
(an exponential average with the layer's momentum, never differentiated). The evaluations
(:func:`dofbench.engine.evaluate.evaluate_stacked`) switch to eval mode (running statistics used,
not updated) and restore the previous mode, so outside them a network is always in train mode (as
built), also in :func:`dofbench.engine.loop.train_full`. :meth:`FlatNet.reset_buffers` restores
the buffers captured at construction; :func:`dofbench.engine.loop.train_trials` calls it at the
start of every trial, so each trial's statistics come from its own training steps only.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


# parameter-free modules that act on each entry alone: the same on a stack of networks' activations
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU, nn.Softplus,
               nn.Hardtanh, nn.Mish, nn.Identity)


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
        """The module at θ on ``x``. A plain stack (see :meth:`stacked_forward`) runs its layers
        directly on views of θ (``F.linear``: the same ops as the module's own forward, without
        ``functional_call``'s per-call swapping of parameters, which costs more than the
        products of a small MLP); any other module goes through ``functional_call``."""
        if self._stack_plan is None:
            return functional_call(self.module, (self.unflatten(theta), self.buffers), (x,), strict=False)
        params = self.unflatten(theta)
        h = x
        for op, arg in self._stack_plan:
            if op in ("linear", "linear_relu"):
                h = F.linear(h, params[f"{arg}weight"], params.get(f"{arg}bias"))
                if op == "linear_relu":
                    h = F.relu(h)
            elif op == "flatten":
                h = h.flatten(*arg)
            else:
                h = arg(h)
        return h

    def stacked_forward(self, thetas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """K networks at once: ``thetas`` (K × D) on inputs ``x`` (K × batch × …), outputs
        K × batch × …; equal to ``vmap(forward)(thetas, x)``. Networks built only of
        ``nn.Sequential``, ``nn.Linear``, ``nn.Flatten`` and elementwise activations run as one
        batched matrix product per layer (no ``functional_call``, no vmap: much less overhead
        per step, which is what training seeds together is for); any other network is vmapped."""
        if self._stack_plan is None:
            return torch.func.vmap(self.forward)(thetas, x)
        k = thetas.shape[0]
        params = dict(zip(self.names, (t.view(k, *s) for t, s in zip(torch.split(thetas, self.numels, 1),
                                                                        self.shapes))))
        h = x
        for op, arg in self._stack_plan:
            if op in ("linear", "linear_relu"):
                w, b = params[f"{arg}weight"], params.get(f"{arg}bias")
                lead = h.shape[1:-1]
                out = _StackedLinear.apply(h.reshape(k, -1, h.shape[-1]), w, b)
                if op == "linear_relu":  # in place: the output is fresh and its backward does not need it
                    out = out.relu_()
                h = out.view(k, *lead, w.shape[1])
            elif op == "flatten":
                start, end = arg
                h = h.flatten(start + 1, end + 1 if end >= 0 else end)
            else:  # an elementwise module, the same on any shape
                h = arg(h)
        return h

    @functools.cached_property
    def _stack_plan(self) -> list[tuple[str, Any]] | None:
        """The layer-by-layer plan of :meth:`forward` and :meth:`stacked_forward`, or None when the
        module is not a plain stack of linear layers, flattens and elementwise activations, or
        has forward hooks (which only the module's own call runs)."""
        if self.buffers:
            return None
        plan: list[tuple[str, Any]] = []
        covered: set[str] = set()

        def walk(module: nn.Module, prefix: str) -> bool:
            if type(module) is nn.Sequential:
                return all(walk(child, f"{prefix}{name}.") for name, child in module.named_children())
            if type(module) is nn.Linear:
                plan.append(("linear", prefix))
                covered.update(f"{prefix}{n}" for n, _ in module.named_parameters())
                return True
            if type(module) is nn.Flatten:
                plan.append(("flatten", (module.start_dim, module.end_dim)))
                return True
            if type(module) is nn.ReLU and plan and plan[-1][0] == "linear":
                # a ReLU right after a linear layer runs in place on the layer's output: one
                # activation-sized allocation and pass fewer per layer
                plan[-1] = ("linear_relu", plan[-1][1])
                return True
            if type(module) in ELEMENTWISE and not list(module.parameters()):
                plan.append(("elementwise", module))
                return True
            return False

        hooked = any(m._forward_hooks or m._forward_pre_hooks for m in self.module.modules())
        if hooked or not walk(self.module, "") or covered != set(self.names):
            return None
        return plan

    def segments(self) -> list[tuple[str, int, int]]:
        """(name, start, stop) of each parameter tensor inside θ."""
        out, start = [], 0
        for n, k in zip(self.names, self.numels):
            out.append((n, start, start + k))
            start += k
        return out


# On CPU, MKL's batched products h Wᵀ with fewer than 16 output columns (a classifier's logits)
# run at a fraction of the speed of wider ones; forming W hᵀ and copying its transpose back is
# 1.3–2.6× faster for every width 1–15 (K = 8 seeds × 128 or 512 rows × 100 inputs; e.g. 10
# outputs: 116 → 59 µs and 500 → 195 µs) and slower from 16 on. One network's product (F.linear)
# shows no consistent gap at a training batch's size (only at evaluation sizes, about 1% of a
# trial), so :meth:`FlatNet.forward` keeps the plain one.
NARROW_OUT = 15


class _StackedLinear(torch.autograd.Function):
    """K linear layers at once: h (K, n, in), w (K, out, in), b (K, out) or None → (K, n, out).
    Its backward forms each gradient in its parameter's own layout with one batched product
    (autograd's generic rule for ``baddbmm`` on a transposed weight builds the transpose and
    copies it), which makes a stacked training step markedly cheaper."""

    @staticmethod
    def forward(ctx, h, w, b):
        ctx.save_for_backward(h, w)
        ctx.has_bias = b is not None
        if w.shape[1] <= NARROW_OUT and h.device.type == "cpu":  # narrow (the logits): (W hᵀ)ᵀ
            ht = h.transpose(1, 2)
            out = torch.bmm(w, ht) if b is None else torch.baddbmm(b.unsqueeze(2), w, ht)
            return out.transpose(1, 2).contiguous()
        wt = w.transpose(1, 2)
        return torch.bmm(h, wt) if b is None else torch.baddbmm(b.unsqueeze(1), h, wt)

    @staticmethod
    def backward(ctx, grad):
        h, w = ctx.saved_tensors
        gh = torch.bmm(grad, w) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(grad.transpose(1, 2), h) if ctx.needs_input_grad[1] else None
        gb = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gh, gw, gb


def count_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def lecun_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Truncated-free LeCun normal: N(0, 1/fan_in), as JAX/Flax ``lecun_normal`` up to truncation."""
    fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
    with torch.no_grad():
        return tensor.normal_(0.0, 1.0 / math.sqrt(max(fan_in, 1)), generator=generator)
