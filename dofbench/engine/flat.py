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


INPUT_LAYOUTS = ("channels_last",)
"""Memory layouts a network may ask its 4-D inputs in (:attr:`FlatNet.input_layout`)."""

EVAL_CHUNK_BYTES = 8 * 1024**2
"""On the CPU an evaluation chunk holds as many rows as keep its largest activation within this
many bytes (:meth:`FlatNet.eval_rows`). Measured with ``python -m perf anchor`` on a 2-core AMD
EPYC (1 MiB L2 per core, 32 MiB L3), one thread, µs per row: Conv-2 on 28×28 (50 KB per row in
its first activation) 47 at 128 rows, 52 at 256, 104 at 512, 125 at 1024; Conv-3 172 at 64–128,
279 at 256; ResNet-20 1330 at 64–128, 1476 at 256, 2212 at 512; LeNet-5 flat from 128 on; the
MNIST-1D MLP (400 B per row) within noise from 1024 to 8192."""

MAX_EVAL_ROWS = 4096
"""The largest evaluation chunk, and the chunk on devices other than the CPU."""

MIN_EVAL_ROWS = 16


class FlatNet:
    """``input_layout = "channels_last"`` gives 4-D inputs (N, C, H, W) channels-last strides
    before the module sees them (the same values; on the CPU oneDNN's convolutions and pooling
    run 1.2–1.6× faster on them: Conv-2, Conv-3, LeNet-5, ResNet-20 measured with
    ``python -m perf anchor``); a model asks for it through ``Model.input_layout``. Stacked
    forwards (:meth:`stacked_forward`) take their inputs as they come."""

    def __init__(self, module: nn.Module, *, input_layout: str | None = None):
        if input_layout is not None and input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"input_layout {input_layout!r}; allowed: None, {', '.join(INPUT_LAYOUTS)}")
        self.module = module
        self.input_layout = input_layout
        self._eval_rows: dict[tuple, int] = {}
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

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the layout the network asked for (:attr:`input_layout`); as it is otherwise."""
        if self.input_layout == "channels_last" and x.dim() == 4:
            return x.to(memory_format=torch.channels_last)  # .contiguous() would keep C = 1 strides
        return x

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The module at θ on ``x`` (in :attr:`input_layout`). A plain stack (see
        :meth:`stacked_forward`) runs its layers directly on views of θ (``F.linear``: the same ops
        as the module's own forward, without ``functional_call``'s per-call swapping of
        parameters, which costs more than the products of a small MLP); any other module goes
        through ``functional_call``."""
        return self._forward(theta, self.prepare(x))

    def _forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self._stack_plan is None:
            return functional_call(self.module, (self.unflatten(theta), self.buffers), (x,), strict=False)
        params = self.unflatten(theta)
        h = x
        for op, arg in self._stack_plan:
            if op in ("linear", "linear_relu"):
                h = F.linear(h, params[f"{arg}weight"], params.get(f"{arg}bias"))
                if op == "linear_relu":  # in place, as in stacked_forward: one activation-sized pass fewer
                    h = h.relu_()
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
            return torch.func.vmap(self._forward)(thetas, x)
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

    def eval_rows(self, x: torch.Tensor) -> int:
        """Rows per evaluation chunk for inputs like ``x`` (one row is enough): on the CPU the
        largest power of two whose chunk keeps the network's largest activation (the output of
        any of its modules) within :data:`EVAL_CHUNK_BYTES`, between :data:`MIN_EVAL_ROWS` and
        :data:`MAX_EVAL_ROWS`; elsewhere :data:`MAX_EVAL_ROWS`. Found once per input shape by
        running the module on one row in its current mode (evaluations run it in eval mode)."""
        if x.device.type != "cpu":
            return MAX_EVAL_ROWS
        key = tuple(x.shape[1:])
        if key not in self._eval_rows:
            largest = [0]

            def hook(module, args, output):
                if isinstance(output, torch.Tensor):
                    largest[0] = max(largest[0], output.numel() * output.element_size())

            self._stack_plan  # decided before the hooks below exist (a hooked module has no plan)
            handles = [m.register_forward_hook(hook) for m in self.module.modules()]
            try:
                with torch.no_grad():
                    self.module(self.prepare(x[:1]))
            finally:
                for h in handles:
                    h.remove()
            rows = MAX_EVAL_ROWS
            while rows > MIN_EVAL_ROWS and rows * largest[0] > EVAL_CHUNK_BYTES:
                rows //= 2
            self._eval_rows[key] = rows
        return self._eval_rows[key]

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


TRUNCATED_NORMAL_STD = 0.87962566103423978
"""Standard deviation of N(0, 1) truncated to [−2, 2]: Flax's ``variance_scaling(...,
'truncated_normal')`` divides its stddev by it so that the truncated draws keep the variance."""


def lecun_truncated_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flax's ``lecun_normal()`` = ``variance_scaling(1, 'fan_in', 'truncated_normal')``: N(0, 1)
    truncated to [−2, 2], times sqrt(1/fan_in) / 0.87962566 (variance exactly 1/fan_in)."""
    fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
    std = 1.0 / math.sqrt(max(fan_in, 1)) / TRUNCATED_NORMAL_STD
    with torch.no_grad():
        torch.nn.init.trunc_normal_(tensor, 0.0, 1.0, -2.0, 2.0, generator=generator)
        return tensor.mul_(std)


def lecun_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Truncated-free LeCun normal: N(0, 1/fan_in), as JAX/Flax ``lecun_normal`` up to truncation."""
    fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
    with torch.no_grad():
        return tensor.normal_(0.0, 1.0 / math.sqrt(max(fan_in, 1)), generator=generator)
