"""The Hessian spectrum of a trained network by Lanczos on Hessian–vector products (torch.func),
and the local-quadratic prediction of d*(ε) it implies (methods.md §7 applied to real networks).

Near a trained point θ_T the loss is L(θ) ≈ L(θ_T) + ½ (θ − θ_T)ᵀ H (θ − θ_T), so the sub-level
set at a loss level ε > L(θ_T) is the ellipsoid of the quadratic well at level ε − L(θ_T), seen
from θ0 at distance R = ‖θ0 − θ_T‖. Lanczos with full reorthogonalisation gives Ritz values and
the weights of stochastic Lanczos quadrature; the D eigenvalues are approximated by the Ritz
values repeated in proportion to their weights. Non-positive curvature is flat or descending:
it is clamped to ``floor`` (a direction the ellipsoid extends far along).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.func import grad, jvp

from dofbench.engine.data import DataBundle
from dofbench.engine.flat import FlatNet


def full_loss_fn(net: FlatNet, data: DataBundle, loss_fn: Callable, max_examples: int | None = 4096
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """θ ↦ training loss on (the first ``max_examples`` of) the training set."""
    x, y = data.x_train, data.y_train
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    return lambda theta: loss_fn(net.forward(theta, x), y)


def hvp_fn(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ H(θ) v by forward-over-reverse differentiation (torch.func.jvp of torch.func.grad)."""
    g = grad(f)
    theta = theta.detach()
    return lambda v: jvp(g, (theta,), (v,))[1]


@dataclass(frozen=True)
class LanczosResult:
    ritz: np.ndarray      # Ritz values (ascending)
    weights: np.ndarray   # quadrature weights (sum to 1)
    D: int

    def spectrum(self, floor: float) -> np.ndarray:
        """D eigenvalues: each Ritz value repeated ≈ D·weight times (at least once), clamped to
        ≥ ``floor``."""
        counts = np.maximum(1, np.round(self.weights * self.D)).astype(int)
        lam = np.repeat(self.ritz, counts)
        if len(lam) > self.D:  # drop from the bulk (the middle), keep the extremes
            lam = np.sort(lam)
            excess = len(lam) - self.D
            mid = len(lam) // 2
            lam = np.concatenate([lam[: mid - excess // 2 - excess % 2], lam[mid + excess // 2:]])
        elif len(lam) < self.D:
            lam = np.concatenate([lam, np.full(self.D - len(lam), np.median(lam))])
        return np.maximum(np.sort(lam)[::-1], floor)


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], D: int, k: int, *, generator: torch.Generator,
            device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LanczosResult:
    """k steps of Lanczos with full reorthogonalisation from a random unit vector."""
    k = min(k, D)
    Q = torch.zeros(k, D, dtype=dtype, device=device)
    alpha = np.zeros(k)
    beta = np.zeros(k)
    q = torch.randn(D, generator=generator, dtype=dtype).to(device)
    q = q / q.norm()
    m = k
    for j in range(k):
        Q[j] = q
        w = matvec(q)
        alpha[j] = float(w @ q)
        w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)      # full reorthogonalisation (twice is enough)
        w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        b = float(w.norm())
        if j + 1 < k:
            beta[j] = b
            if b < 1e-10:
                m = j + 1
                break
            q = w / b
    T = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    vals, vecs = np.linalg.eigh(T)
    return LanczosResult(vals, vecs[0] ** 2, D)


@dataclass(frozen=True)
class LocalQuadratic:
    """What the local-quadratic prediction needs: L(θ_T), R = ‖θ0 − θ_T‖ and the spectrum."""

    loss: float
    R: float
    lanczos: LanczosResult
    floor: float

    def eigenvalues(self) -> np.ndarray:
        return self.lanczos.spectrum(self.floor)


def local_quadratic(net: FlatNet, theta0: torch.Tensor, theta_T: torch.Tensor, data: DataBundle,
                    loss_fn: Callable, *, k: int = 64, floor_ratio: float = 1e-6, seed: int = 0,
                    max_examples: int | None = 4096) -> LocalQuadratic:
    """Lanczos at θ_T on the full-batch training loss. ``floor_ratio``: non-positive and tiny
    curvature is clamped to floor_ratio × the largest Ritz value."""
    f = full_loss_fn(net, data, loss_fn, max_examples)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    res = lanczos(hvp_fn(f, theta_T), theta_T.numel(), k, generator=gen, device=theta_T.device,
                  dtype=theta_T.dtype)
    with torch.no_grad():
        loss = float(f(theta_T))
    top = float(max(res.ritz.max(), 1e-12))
    return LocalQuadratic(loss, float((theta0 - theta_T).norm()), res, floor_ratio * top)


def quadratic_d_star(lq: LocalQuadratic, epsilons: list[float], delta: float = 0.1, samples: int = 200,
                     seed: int = 0) -> list[dict]:
    """The local-quadratic prediction of d*(ε) for loss levels ε (None where ε ≤ L(θ_T))."""
    from dofbench.analysis.theory import predict_d_star, projected_width

    lam = lq.eigenvalues()
    out = []
    for eps in epsilons:
        level = eps - lq.loss
        if level <= 0:
            out.append({"epsilon": eps, "d_star": None, "lo": None, "hi": None, "w2": None})
            continue
        pw = projected_width(lam, level, lq.R, n=samples, seed=seed)
        pred = predict_d_star(len(lam), pw.w2, delta, pw.intrinsic_sd)
        out.append({"epsilon": eps, "d_star": pred.d_star, "lo": pred.lo, "hi": pred.hi, "w2": pw.w2})
    return out

