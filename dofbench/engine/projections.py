"""Random projections A: R^d → R^D for the subspace methods, behind one interface.

Every projection is an exact linear map θ-offset = A φ:

- ``dense``: the paper's i.i.d. N(0, 1) matrix with unit-norm columns (not orthogonalised), the
  faithful reference, stored transposed; refused before allocation when 4·D·d bytes exceed a budget;
- ``orthonormal``: the same matrix with QR-orthonormalised columns (for the theory);
- ``sparse``: Li et al.'s very sparse projection: per parameter tensor ("layer") of n entries,
  density 1/sqrt(n), values ±1, then global column normalisation; applied with gather +
  ``index_add`` (torch.sparse matmul is several times slower on CPU);
- ``fastfood``: Li et al.'s H·G·Π·H·B with an unnormalised fast Walsh–Hadamard transform, built
  from ⌈D/L⌉ stacked independent blocks of size L = 2^⌈log2 d⌉ (not one block of 2^⌈log2 D⌉):
  O(D log d) time, O(D) memory whatever d is, columns of unit norm in expectation (exactly unit
  when L divides D);
- ``auto``: :func:`resolve_kind` picks dense while the matrix is small, fastfood otherwise.

**Nested** projections (``nested_seed``): one projection per seed whose first d columns are the
d-dimensional one, so span(A_d) ⊂ span(A_{d'}) for d < d' and success is geometrically monotone
in d per seed. Each kind keeps its law column by column, so every A_d is still marginally the
same random subspace as an independent draw:

- dense (and orthonormal): columns drawn in blocks of :data:`NESTED_BLOCK`, block b from its own
  generator (seed, b), so any prefix of columns is reproducible; orthonormal = QR of that prefix
  with diag(R) > 0, which is prefix-consistent (Gram–Schmidt);
- sparse: the same per-block generators draw each block's entries (density 1/sqrt(layer size),
  ±1, a lone entry for an empty column), columns normalised one by one;
- fastfood: Li et al.'s original single transform of size L = 2^⌈log2 D⌉ (B, G, Π of length L,
  independent of d): column j of H·G·Π·H·diag(B) is B_j·H·G·Π·h_j whatever d is, so A_d is the
  first d columns of one D×L map (O(L log L) time per product, about 4·L bytes).

A projection keeps its randomness in a few tensors (:attr:`Projection.tensors`) and applies them
with the pure function :meth:`Projection.apply`, so seeds can be stacked (:func:`stack_projections`)
and trained together (:meth:`Projection.apply_stacked`: one call for the built-in kinds, vmap for
others). :meth:`Projection.matrix` materialises the
map (for tests and theory on small D). Randomness comes from a CPU ``torch.Generator``, so a seed
gives the same map on every device.
"""

from __future__ import annotations

import functools
import math
import typing
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from dofbench.config.identity import derive_seed
from dofbench.errors import DofbenchError

NESTED_BLOCK = 64
"""Columns per generator of a nested dense or sparse projection: block b of columns comes from the
generator of (seed, b), so the first d columns are the same whatever larger d is asked for."""

DEFAULT_DENSE_BUDGET_BYTES = 2 * 1024**3
DEFAULT_AUTO_DENSE_BYTES = 64 * 1024**2

ProjectionKind = Literal["dense", "orthonormal", "sparse", "fastfood", "auto"]
PROJECTION_KINDS: tuple[str, ...] = typing.get_args(ProjectionKind)


class Projection:
    """An exact linear map R^d → R^D held in :attr:`tensors` and applied by :meth:`apply`."""

    kind: ClassVar[str] = "projection"

    def __init__(self, D: int, d: int):
        self.D, self.d = int(D), int(d)
        self.tensors: dict[str, torch.Tensor] = {}

    # --- the map -------------------------------------------------------------------------------
    def static(self) -> dict[str, Any]:
        """Non-tensor configuration passed to :meth:`apply` (equal across stacked seeds)."""
        return {"D": self.D, "d": self.d}

    @staticmethod
    def apply(t: dict[str, torch.Tensor], phi: torch.Tensor, **static: Any) -> torch.Tensor:
        """A φ from the tensors ``t`` of one projection; pure, so ``vmap`` can batch it."""
        raise NotImplementedError  # pragma: no cover - interface

    @classmethod
    def apply_stacked(cls, t: dict[str, torch.Tensor], phi: torch.Tensor, **static: Any) -> torch.Tensor:
        """A_k φ_k for K stacked projections (tensors with a leading K axis) and φ of shape (K, d).
        The built-in projections do it in one call; the default vmaps :meth:`apply`."""
        return torch.func.vmap(lambda tk, pk: cls.apply(tk, pk, **static))(t, phi)

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        """A φ, a flat tensor of length D."""
        return self.apply(self.tensors, phi, **self.static())

    def matrix(self) -> torch.Tensor:
        """The D×d matrix of the map (column j = A e_j), by applying it to the identity."""
        eye = torch.eye(self.d, device=self.device, dtype=torch.float32)
        return torch.func.vmap(self, in_dims=1, out_dims=1)(eye)

    # --- bookkeeping ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the projection between steps."""
        return int(sum(t.numel() * t.element_size() for t in self.tensors.values()))

    def info(self) -> dict[str, Any]:
        return {"projection": self.kind, "projection_bytes": self.memory_bytes}

    def to(self, device: torch.device | str) -> "Projection":
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        return self


# ------------------------------------------------------------------------------------- dense
class DenseProjection(Projection):
    """The paper's projection: i.i.d. N(0, 1) entries, each column scaled to unit ℓ2 norm
    (columns not orthogonalised); ``orthonormal=True`` orthonormalises them with QR instead.

    Stored transposed, as the d×D tensor ``AT`` (each column of A contiguous): both products of
    a step, A φ and Aᵀ g, then stream the matrix row by row, 2–3× faster on CPU than with a D×d
    row-major matrix, where A φ reads rows of only d floats."""

    kind = "dense"

    def __init__(self, D: int, d: int, generator: torch.Generator | None, device: torch.device | str = "cpu",
                 *, orthonormal: bool = False, budget_bytes: int = DEFAULT_DENSE_BUDGET_BYTES,
                 nested_seed: int | None = None):
        super().__init__(D, d)
        need = dense_bytes(self.D, self.d)
        if need > budget_bytes:
            raise DofbenchError(
                f"projection: a dense {self.D}×{self.d} matrix needs {need / 1024**3:.1f} GiB, over the "
                f"budget of {budget_bytes / 1024**3:.1f} GiB (param dense_budget_gb); use a projection "
                f"that does not store the matrix (sparse or fastfood) or a smaller d")
        if nested_seed is not None:  # columns block by block (module docstring): drawn as Aᵀ, d×D
            at = torch.cat([torch.randn(NESTED_BLOCK, self.D, generator=_block_generator(nested_seed, b))
                            for b in range(-(-self.d // NESTED_BLOCK))])[: self.d]
            a = at.t()
        else:
            a = torch.randn(self.D, self.d, generator=generator)  # drawn as A, D×d, row by row
        if orthonormal:
            if self.d > self.D:
                raise DofbenchError(f"projection: orthonormal columns need d ≤ D (d={self.d}, D={self.D})")
            q, r = torch.linalg.qr(a)
            if nested_seed is not None:  # diag(R) > 0: Q unique, its first d columns those of any larger d
                q = q * torch.sign(torch.diagonal(r)).masked_fill(torch.diagonal(r) == 0, 1)
            at = q.t().contiguous()
            self.kind = "orthonormal"
        else:
            at = a.t().contiguous()
            at /= at.norm(dim=1, keepdim=True)
        self.tensors = {"AT": at.to(device)}

    @property
    def A(self) -> torch.Tensor:
        """The D×d matrix (a view of the stored transpose)."""
        return self.tensors["AT"].t()

    @staticmethod
    def apply(t, phi, **static):
        return phi @ t["AT"]

    @classmethod
    def apply_stacked(cls, t, phi, **static):
        # (K, 1, d) @ (K, d, D): one batched product; its backward is the batched Aᵀ g
        return torch.bmm(phi.unsqueeze(1), t["AT"]).squeeze(1)

    def matrix(self) -> torch.Tensor:
        return self.A


def dense_bytes(D: int, d: int) -> int:
    """Bytes of a float32 D×d matrix."""
    return 4 * int(D) * int(d)


# ------------------------------------------------------------------------------------- sparse
class SparseProjection(Projection):
    """Li et al.'s very sparse random projection with global column normalisation.

    Entry (i, j) of the rows of a parameter tensor with n entries is nonzero with probability
    1/sqrt(n), independently, with value ±1; every column is then divided by its ℓ2 norm. A column
    left empty by chance (possible only for tiny D) gets one ±1 entry at a random row. Stored as
    (row, col, value) triples sorted by row; applied as ``zeros(D).index_add(rows, vals·φ[cols])``.
    """

    kind = "sparse"

    def __init__(self, D: int, d: int, generator: torch.Generator | None, device: torch.device | str = "cpu",
                 *, segments: list[int] | None = None, nested_seed: int | None = None):
        super().__init__(D, d)
        segments = list(segments) if segments else [self.D]
        if sum(segments) != self.D:
            raise ValueError(f"segments sum to {sum(segments)}, not D={self.D}")
        if nested_seed is None:
            row, col, sign = _sparse_entries(self.D, self.d, segments, generator)
        else:  # block b of NESTED_BLOCK columns from its own generator; keep the columns < d
            parts = [_sparse_entries(self.D, NESTED_BLOCK, segments, _block_generator(nested_seed, b))
                     for b in range(-(-self.d // NESTED_BLOCK))]
            row = torch.cat([r for r, _, _ in parts])
            col = torch.cat([c + b * NESTED_BLOCK for b, (_, c, _) in enumerate(parts)])
            sign = torch.cat([x for _, _, x in parts])
            keep = col < self.d
            row, col, sign = row[keep], col[keep], sign[keep]
            order = torch.argsort(row, stable=True)
            row, col, sign = row[order], col[order], sign[order]
        counts = torch.bincount(col, minlength=self.d)
        vals = sign / counts.float().sqrt()[col]
        self.tensors = {"rows": row.int().to(device), "cols": col.int().to(device), "vals": vals.to(device)}

    @staticmethod
    def apply(t, phi, *, D, d):
        return phi.new_zeros(D).index_add(0, t["rows"], t["vals"] * phi.index_select(0, t["cols"]))

    @classmethod
    def apply_stacked(cls, t, phi, *, D, d):
        # one index_add into the K·D entries: seed k's rows are offset by k·D
        K = phi.shape[0]
        offset = torch.arange(K, device=phi.device).unsqueeze(1) * D
        contrib = t["vals"] * phi.gather(1, t["cols"].long())
        rows = (t["rows"].long() + offset).flatten()
        return phi.new_zeros(K * D).index_add(0, rows, contrib.flatten()).view(K, D)

    @property
    def nnz(self) -> int:
        return int(self.tensors["rows"].numel())


def _sparse_entries(D: int, d: int, segments: list[int], generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, signs) of a sparse projection's entries, sorted by row: per segment of n rows
    each entry nonzero with probability 1/sqrt(n), a column left empty gets one entry at a random
    row, signs ±1."""
    rows, cols = [], []
    offset = 0
    for n in segments:
        p = min(1.0, 1.0 / math.sqrt(n))
        pos = _bernoulli_positions(n * d, p, generator)
        rows.append(pos // d + offset)
        cols.append(pos % d)
        offset += n
    row, col = torch.cat(rows), torch.cat(cols)
    counts = torch.bincount(col, minlength=d)
    empty = (counts == 0).nonzero().flatten()
    if len(empty):  # give each empty column one entry, keeping rows sorted
        extra = torch.randint(0, D, (len(empty),), generator=generator)
        row, col = torch.cat([row, extra]), torch.cat([col, empty])
        order = torch.argsort(row, stable=True)
        row, col = row[order], col[order]
    sign = torch.randint(0, 2, (len(row),), generator=generator).float().mul_(2).sub_(1)
    return row, col, sign


def _block_generator(seed: int, block: int) -> torch.Generator:
    """The CPU generator of block ``block`` of a nested projection of seed ``seed``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed("nested-projection-block", seed, block))
    return g


def _bernoulli_positions(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Sorted positions in [0, n) of independent Bernoulli(p) successes, drawn as cumulative
    geometric gaps: O(n·p) time and memory however large n is."""
    if p >= 1.0:
        return torch.arange(n)
    log_q = math.log1p(-p)
    out: list[torch.Tensor] = []
    last = -1
    while True:
        mean = (n - 1 - last) * p
        k = int(mean + 6 * math.sqrt(mean + 1) + 16)
        u = torch.rand(k, generator=generator, dtype=torch.float64).clamp_min_(1e-300)
        gaps = torch.floor(torch.log(u) / log_q).long() + 1
        pos = last + torch.cumsum(gaps, 0)
        inside = pos[pos < n]
        out.append(inside)
        if len(inside) < k:
            return torch.cat(out)
        last = int(pos[-1])


# ------------------------------------------------------------------------------------- fastfood
FASTFOOD_MIN_BLOCK = 64  # smallest Fastfood block: tiny d would otherwise pay per-block overhead


class FastfoodProjection(Projection):
    """Li et al.'s Fastfood projection from stacked independent blocks.

    With L = max(2^⌈log2 d⌉, :data:`FASTFOOD_MIN_BLOCK`) and nb = ⌈D/L⌉ blocks, block i maps φ to
    s_i · H·diag(G_i)·Π_i·H·diag(B_i)·pad_L(φ) (unnormalised Walsh–Hadamard H, B_i ∈ {±1}^d,
    Π_i a random permutation of L, G_i ~ N(0, 1)^L) and the blocks are stacked and cut to D rows.
    A column's squared norm inside block i is exactly L·ΣG_i², so s_i = 1 / (sqrt(L·ΣG_i²)·sqrt(D/L))
    (methods.md §1, per block) makes every column unit-norm in expectation. Stored compactly —
    G_i in float16 (the map is defined by the stored values), Π_i as int16 when L ≤ 2^15, B_i as
    int8 — about D·(4 + d/L) bytes: under 2·D floats whatever d is in practice. Forward and
    backward (Aᵀ, the same transforms in reverse) save nothing for autograd beyond the projection.
    """

    kind = "fastfood"

    def __init__(self, D: int, d: int, generator: torch.Generator | None, device: torch.device | str = "cpu",
                 *, nested_seed: int | None = None):
        super().__init__(D, d)
        if nested_seed is not None:  # Li et al.'s one transform of size 2^⌈log2 D⌉, independent of d
            L = max(1 << max(0, math.ceil(math.log2(self.D))), FASTFOOD_MIN_BLOCK)
            nb = 1
            generator = _block_generator(nested_seed, 0)
            B = torch.randint(0, 2, (nb, L), generator=generator).to(torch.int8).mul_(2).sub_(1)[:, : self.d].contiguous()
        else:
            L = max(1 << max(0, math.ceil(math.log2(self.d))), FASTFOOD_MIN_BLOCK)
            nb = -(-self.D // L)
            B = torch.randint(0, 2, (nb, self.d), generator=generator).to(torch.int8).mul_(2).sub_(1)
        G = torch.randn(nb, L, generator=generator).to(torch.float16)
        perm = torch.argsort(torch.rand(nb, L, generator=generator), dim=1)
        perm = perm.to(torch.int16 if L <= 2**15 else torch.int32)
        g2 = G.double().pow(2).sum(1)
        scale = (1.0 / (torch.sqrt(L * g2) * math.sqrt(self.D / L))).float()
        self.L, self.nb = L, nb
        self.tensors = {"B": B.to(device), "G": G.to(device), "perm": perm.to(device),
                        "scale": scale.to(device)}

    def static(self):
        return {"D": self.D, "d": self.d}

    @staticmethod
    def apply(t, phi, *, D, d):
        return _FastfoodFn.apply(phi, t["B"], t["G"], t["perm"], t["scale"], D)

    @classmethod
    def apply_stacked(cls, t, phi, *, D, d):
        # the transforms act on the last axis, so K stacked seeds are one call (no vmap)
        return _FastfoodFn.apply(phi, t["B"], t["G"], t["perm"], t["scale"], D)


# Both functions take optional leading (seed) axes: φ (…, d), B (…, nb, d), G and perm (…, nb, L),
# scale (…, nb); the transforms act on the last axis.
def fastfood_forward(phi, B, G, perm, scale, D):
    """A φ for a Fastfood projection (see :class:`FastfoodProjection`)."""
    nb, L = G.shape[-2:]
    x = F.pad(B.to(phi.dtype) * phi.unsqueeze(-2), (0, L - phi.shape[-1]))  # (…, nb, L): pad_L(B_i φ)
    u = fwht(x).gather(-1, perm.to(torch.int64)) * G.to(phi.dtype)
    y = fwht(u) * scale.unsqueeze(-1)
    return y.reshape(*y.shape[:-2], nb * L)[..., :D]


def fastfood_transpose(g, B, G, perm, scale, D):
    """Aᵀ g for a Fastfood projection: the adjoint of :func:`fastfood_forward`."""
    nb, L = G.shape[-2:]
    y = F.pad(g, (0, nb * L - D)).reshape(*g.shape[:-1], nb, L) * scale.unsqueeze(-1)
    v = fwht(y) * G.to(g.dtype)
    u = torch.zeros_like(v).scatter_(-1, perm.to(torch.int64), v)
    return (fwht(u)[..., :B.shape[-1]] * B.to(g.dtype)).sum(-2)


class _FastfoodFn(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(phi, B, G, perm, scale, D):
        return fastfood_forward(phi, B, G, perm, scale, D)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, B, G, perm, scale, D = inputs
        ctx.save_for_backward(B, G, perm, scale)
        ctx.D = D

    @staticmethod
    def backward(ctx, grad):
        B, G, perm, scale = ctx.saved_tensors
        return fastfood_transpose(grad, B, G, perm, scale, ctx.D), None, None, None, None, None


HADAMARD_MAX_BITS = 7  # the transform multiplies by Hadamard matrices of at most 2^7 = 128 rows


@functools.lru_cache(maxsize=64)
def _hadamard(bits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=dtype)
    for _ in range(bits):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h.to(device)


def _split_bits(k: int) -> list[int]:
    parts = -(-k // HADAMARD_MAX_BITS) if k else 0
    return [k // parts + (1 if i < k % parts else 0) for i in range(parts)]


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised fast Walsh–Hadamard transform along the last axis (length a power of 2), in
    Sylvester order: H_L = H_{m1} ⊗ … ⊗ H_{mr}, one small matrix product per factor (each moves
    its axis to the end, so after all factors the order is the original one)."""
    L = x.shape[-1]
    k = L.bit_length() - 1
    if L != 1 << k:
        raise ValueError(f"fwht needs a power-of-2 length, got {L}")
    lead = x.shape[:-1]
    y = x.reshape(-1, L)
    n = y.shape[0]
    for bits in _split_bits(k):
        m = 1 << bits
        y = (y.reshape(n, m, L // m).transpose(1, 2) @ _hadamard(bits, x.dtype, x.device)).reshape(n, L)
    return y.reshape(*lead, L)


# ------------------------------------------------------------------------------------- choice
def resolve_kind(kind: str, D: int, d: int, *, auto_dense_bytes: int = DEFAULT_AUTO_DENSE_BYTES) -> str:
    """The concrete projection ``kind`` stands for: ``auto`` → dense while its matrix is at most
    ``auto_dense_bytes`` (one matrix product is the cheapest map there), fastfood otherwise
    (O(D) memory, O(D log d) time — the cheapest that fits at scale)."""
    if kind != "auto":
        return kind
    return "dense" if dense_bytes(D, d) <= auto_dense_bytes else "fastfood"


def make_projection(kind: str, D: int, d: int, generator: torch.Generator | None,
                    device: torch.device | str = "cpu", *, segments: list[int] | None = None,
                    budget_bytes: int = DEFAULT_DENSE_BUDGET_BYTES,
                    auto_dense_bytes: int = DEFAULT_AUTO_DENSE_BYTES, nested_seed: int | None = None) -> Projection:
    """Build the projection ``kind`` (one of :data:`PROJECTION_KINDS`) for a map R^d → R^D.
    ``segments`` are the sizes of the parameter tensors (the sparse projection's "layers").
    ``nested_seed``: build the first d columns of the seed's one nested projection (module
    docstring) instead of drawing from ``generator``; ``auto`` cannot be nested (it changes kind
    with d)."""
    if d < 1 or d > D:
        raise DofbenchError(f"projection: d must be in 1..D={D}, got {d}")
    if nested_seed is not None and kind == "auto":
        raise DofbenchError("projection: 'auto' cannot be nested (it switches from dense to fastfood as d "
                            "grows); allowed with nested: dense, orthonormal, sparse, fastfood")
    resolved = resolve_kind(kind, D, d, auto_dense_bytes=auto_dense_bytes)
    if resolved in ("dense", "orthonormal"):
        return DenseProjection(D, d, generator, device, orthonormal=resolved == "orthonormal",
                               budget_bytes=budget_bytes, nested_seed=nested_seed)
    if resolved == "sparse":
        return SparseProjection(D, d, generator, device, segments=segments, nested_seed=nested_seed)
    if resolved == "fastfood":
        return FastfoodProjection(D, d, generator, device, nested_seed=nested_seed)
    raise DofbenchError(f"projection: unknown kind {kind!r}; allowed: {', '.join(PROJECTION_KINDS)}")


def stack_projections(projs: list[Projection]) -> tuple[type[Projection], dict[str, Any], dict[str, torch.Tensor]]:
    """(class, static config, tensors stacked on a new leading axis) of projections of the same
    kind and shape, for ``vmap``. Sparse projections are padded to the largest nonzero count with
    zero values (which add nothing). Raises ValueError when they cannot be stacked."""
    first = projs[0]
    if any(type(p) is not type(first) or p.static() != first.static() for p in projs):
        raise ValueError("projections differ in kind or shape")
    if isinstance(first, SparseProjection):
        n = max(p.nnz for p in projs)
        tensors = {k: torch.stack([F.pad(p.tensors[k], (0, n - p.nnz)) for p in projs])
                   for k in first.tensors}
    else:
        tensors = {k: torch.stack([p.tensors[k] for p in projs]) for k in first.tensors}
    return type(first), first.static(), tensors
