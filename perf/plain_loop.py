"""The trial a researcher would write by hand in plain PyTorch: the anchor that
``python -m perf anchor`` times dofbench's trial against.

Nothing here imports dofbench. One random-affine-subspace trial, as the paper's released code runs
it: a network (Conv-2 or an MLP) written as a function of one flat θ, θ = θ0 + Aφ with the paper's
dense projection (i.i.d. N(0, 1) entries, every column scaled to unit norm, stored transposed as
d × D), φ from 0 trained by the paper's Adam (constant bias correction m/(1−β1), v/(1−β2), lr
5e-2, ε 1e-7) on shuffled minibatches of 128, and loss and accuracy on the full train and test
sets at step 0, after every epoch and at the end (best and final values kept).

Left to a researcher's usual choices: images are batched in the layout they arrive in (N, C, H, W,
contiguous) or, with ``channels_last=True``, as the same values with channels-last strides (what
images read as N × H × W × C and permuted give); evaluations run in chunks of ``eval_rows`` rows.

``theta0``, ``at`` and ``orders`` may be given (θ0, the d × D matrix Aᵀ and each step's minibatch
indices); then the trial is exactly a given one (tests compare it with dofbench's trial of the same
spec); otherwise the trial draws its own from ``seed``.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- the networks
def conv_shapes(in_channels: int, hw: tuple[int, int], channels: Sequence[int], classes: int) -> list[tuple[int, ...]]:
    """Parameter shapes of Conv-n: per stage a 3×3 conv (weight, bias), then one linear layer."""
    shapes: list[tuple[int, ...]] = []
    c, (h, w) = in_channels, hw
    for out in channels:
        shapes += [(out, c, 3, 3), (out,)]
        c, h, w = out, h // 2, w // 2
    return shapes + [(classes, c * h * w), (classes,)]


def conv_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Conv-n: (3×3 same conv → ReLU → 2×2 average pool) per stage, flatten, linear."""
    h = x
    for i in range(0, len(params) - 2, 2):
        h = F.avg_pool2d(F.relu(F.conv2d(h, params[i], params[i + 1], padding=1)), 2)
    return F.linear(h.flatten(1), params[-2], params[-1])


def mlp_shapes(inputs: int, hidden: Sequence[int], classes: int) -> list[tuple[int, ...]]:
    widths = [inputs, *hidden, classes]
    return [s for a, b in zip(widths[:-1], widths[1:]) for s in ((b, a), (b,))]


def mlp_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = x.flatten(1)
    for i in range(0, len(params), 2):
        h = F.linear(h, params[i], params[i + 1])
        if i < len(params) - 2:
            h = F.relu(h)
    return h


def lecun_init(shapes: list[tuple[int, ...]], generator: torch.Generator) -> torch.Tensor:
    """θ0: LeCun-normal weights N(0, 1/fan_in), zero biases, flattened."""
    parts = []
    for s in shapes:
        if len(s) == 1:
            parts.append(torch.zeros(s))
        else:
            fan_in = math.prod(s[1:])
            parts.append(torch.randn(s, generator=generator) / math.sqrt(fan_in))
    return torch.cat([p.reshape(-1) for p in parts])


def unflatten(theta: torch.Tensor, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    sizes = [math.prod(s) for s in shapes]
    return [t.view(s) for t, s in zip(torch.split(theta, sizes), shapes)]


# ----------------------------------------------------------------------------- the trial
def evaluate(forward: Callable, theta: torch.Tensor, shapes, x: torch.Tensor, y: torch.Tensor,
             rows: int) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the whole split, in chunks of ``rows``."""
    params = unflatten(theta, shapes)
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), rows):
            out = forward(params, x[i:i + rows])
            loss += float(F.cross_entropy(out, y[i:i + rows], reduction="sum"))
            correct += int((out.argmax(1) == y[i:i + rows]).sum())
    return loss / len(y), correct / len(y)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """The same images with channels-last strides (N, C, H, W) → memory N × H × W × C."""
    n, c, h, w = x.shape
    return x.new_empty(n, h, w, c).copy_(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def run_trial(model: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
              y_test: torch.Tensor, *, d: int, seed: int = 0, epochs: int = 3, batch_size: int = 128,
              lr: float = 5e-2, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7,
              hidden: Sequence[int] = (100, 100), channels: Sequence[int] = (16, 32), classes: int = 10,
              eval_rows: int = 500, channels_last_inputs: bool = False, theta0: torch.Tensor | None = None,
              at: torch.Tensor | None = None, orders: list[torch.Tensor] | None = None) -> dict:
    """One random-subspace trial of ``model`` ('conv' or 'mlp'); returns the final and best
    (after step 0) train/test loss and accuracy, the steps taken and the seconds spent training
    and evaluating."""
    g = torch.Generator().manual_seed(seed)
    if model == "conv":
        shapes = conv_shapes(x_train.shape[1], tuple(x_train.shape[2:]), channels, classes)
        forward = conv_forward
    else:
        shapes = mlp_shapes(math.prod(x_train.shape[1:]), hidden, classes)
        forward = mlp_forward
    if channels_last_inputs and x_train.dim() == 4:
        x_train, x_test = channels_last(x_train), channels_last(x_test)
    dev = x_train.device  # the draws come from a CPU generator, then move to the data's device
    t_start = time.perf_counter()
    theta0 = (lecun_init(shapes, g) if theta0 is None else theta0).to(dev)
    D = theta0.numel()
    if at is None:  # the paper's A: N(0, 1) entries, unit-norm columns; kept as Aᵀ (d × D)
        at = torch.randn(D, d, generator=g).t().contiguous()
        at /= at.norm(dim=1, keepdim=True)
    at = at.to(dev)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / batch_size)
    total = steps_per_epoch * epochs
    if orders is None:
        orders = []
        while len(orders) < total:
            perm = torch.randperm(n, generator=g)
            orders.extend(perm[i:i + batch_size] for i in range(0, n, batch_size))
    phi = torch.zeros(d, device=dev, requires_grad=True)
    m, v = torch.zeros(d, device=dev), torch.zeros(d, device=dev)
    b1, b2 = betas
    history: list[tuple[int, dict[str, float]]] = []
    eval_s = 0.0

    def record(step: int) -> None:
        nonlocal eval_s
        t = time.perf_counter()
        with torch.no_grad():
            theta = theta0 + phi @ at
        tr = evaluate(forward, theta, shapes, x_train, y_train, eval_rows)
        te = evaluate(forward, theta, shapes, x_test, y_test, eval_rows)
        history.append((step, {"train_loss": tr[0], "train_acc": tr[1], "test_loss": te[0], "test_acc": te[1]}))
        eval_s += time.perf_counter() - t

    record(0)
    for step in range(1, total + 1):
        idx = orders[step - 1].to(dev)
        xb, yb = x_train[idx], y_train[idx]
        theta = theta0 + phi @ at
        loss = F.cross_entropy(forward(unflatten(theta, shapes), xb), yb)
        phi.grad = None
        loss.backward()
        with torch.no_grad():  # the paper's Adam: constant bias correction
            gr = phi.grad
            m.mul_(b1).add_(gr, alpha=1 - b1)
            v.mul_(b2).addcmul_(gr, gr, value=1 - b2)
            phi.addcdiv_(m, (v / (1 - b2)).sqrt_().add_(eps), value=-lr / (1 - b1))
        if step % steps_per_epoch == 0 or step == total:
            record(step)
    wall = time.perf_counter() - t_start
    final = dict(history[-1][1])
    best = {}
    for key in final:
        values = [h[key] for s, h in history if s > 0]
        best[f"best_{key}"] = (min if key.endswith("loss") else max)(values)
    return {**final, **best, "steps": total, "wall_s": wall, "eval_s": eval_s, "train_s": wall - eval_s,
            "evaluations": len(history)}
