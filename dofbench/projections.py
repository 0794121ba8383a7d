"""Random projections A: R^d → R^D for the subspace methods, behind one interface.

Every projection is an exact linear map; :meth:`Projection.matrix` materialises it (for tests and
theory on small D). Randomness comes from a CPU ``torch.Generator`` so a seed gives the same map on
every device.
"""

from __future__ import annotations

import torch

from dofbench.errors import DofbenchError

DEFAULT_DENSE_BUDGET_BYTES = 2 * 1024**3


class Projection:
    kind = "projection"

    def __init__(self, D: int, d: int):
        self.D, self.d = int(D), int(d)

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """A φ, a flat tensor of length D."""
        raise NotImplementedError

    @property
    def memory_bytes(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def matrix(self) -> torch.Tensor:
        """The D×d matrix of the map (column j = A e_j)."""
        eye = torch.eye(self.d, device=self.device, dtype=self.dtype)
        return torch.stack([self(eye[j]) for j in range(self.d)], dim=1)

    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32


class DenseProjection(Projection):
    """The paper's projection: i.i.d. N(0, 1) entries, each column scaled to unit ℓ2 norm
    (columns not orthogonalised); ``orthonormal=True`` orthonormalises them with QR instead."""

    kind = "dense"

    def __init__(self, D: int, d: int, generator: torch.Generator, device: torch.device | str = "cpu",
                 *, orthonormal: bool = False, budget_bytes: int = DEFAULT_DENSE_BUDGET_BYTES):
        super().__init__(D, d)
        need = 4 * self.D * self.d
        if need > budget_bytes:
            raise DofbenchError(
                f"projection: a dense {self.D}×{self.d} matrix needs {need / 1024**3:.1f} GiB, over the "
                f"budget of {budget_bytes / 1024**3:.1f} GiB (param dense_budget_gb); use a projection "
                f"that does not store the matrix (sparse or fastfood) or a smaller d")
        a = torch.randn(self.D, self.d, generator=generator)
        if orthonormal:
            if self.d > self.D:
                raise DofbenchError(f"projection: orthonormal columns need d ≤ D (d={self.d}, D={self.D})")
            a, _ = torch.linalg.qr(a)
        else:
            a = a / a.norm(dim=0, keepdim=True)
        self.A = a.to(device)
        self.device = self.A.device
        if orthonormal:
            self.kind = "orthonormal"

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        return self.A @ phi

    def matrix(self) -> torch.Tensor:
        return self.A

    @property
    def memory_bytes(self) -> int:
        return self.A.numel() * self.A.element_size()
