"""Projections: exact linear maps (forward and gradient against their own matrix), column norms,
reproducibility, memory, stacking for vmap, the dense budget refusal, and that dense, sparse and
Fastfood are the same random-subspace experiment on MNIST-1D."""

import math

import pytest
import torch

from dofbench.errors import DofbenchError
from dofbench.engine.projections import FastfoodProjection, SparseProjection, fwht, make_projection, resolve_kind, stack_projections
from dofbench.config.schemas import TrialSpec
from dofbench.config.runtime import Runtime
from dofbench.engine.worker import Worker
from dofbench.run.host import Host
from dofbench.run.resolve import trial_spec

KINDS = ["dense", "orthonormal", "sparse", "fastfood"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hadamard(L: int) -> torch.Tensor:
    i = torch.arange(L)
    bits = torch.bitwise_and(i[:, None], i[None, :])
    parity = torch.zeros_like(bits)
    while bits.any():
        parity ^= bits & 1
        bits = bits >> 1
    return (1 - 2 * parity).double()


@pytest.mark.parametrize("L", [1, 2, 16, 128, 512])
def test_fwht_is_the_sylvester_hadamard_transform(L):
    x = torch.randn(3, L, dtype=torch.float64)
    assert torch.allclose(fwht(x), x @ hadamard(L), atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("D,d", [(300, 7), (512, 60), (97, 97), (1000, 129)])
def test_projection_is_an_exact_linear_map(kind, D, d):
    p = make_projection(kind, D, d, gen(3), segments=[D // 3, D - D // 3])
    M = p.matrix()
    assert M.shape == (D, d)
    phi = torch.randn(d, requires_grad=True)
    y = p(phi)
    assert torch.allclose(y, M @ phi, atol=1e-5)
    g = torch.randn(D)
    (y * g).sum().backward()
    assert torch.allclose(phi.grad, M.T @ g, atol=1e-5)  # the gradient is Aᵀ g
    again = make_projection(kind, D, d, gen(3), segments=[D // 3, D - D // 3])
    assert torch.equal(again.matrix(), M)  # a seed reproduces the map
    other = make_projection(kind, D, d, gen(4), segments=[D // 3, D - D // 3])
    assert not torch.allclose(other.matrix(), M)


@pytest.mark.parametrize("kind", ["dense", "orthonormal", "sparse"])
def test_unit_norm_columns(kind):
    M = make_projection(kind, 800, 50, gen(0), segments=[600, 200]).matrix()
    assert torch.allclose(M.norm(dim=0), torch.ones(50), atol=1e-5)


def test_fastfood_columns_unit_norm_exactly_when_blocks_tile_D_and_in_expectation_otherwise():
    exact = make_projection("fastfood", 512, 60, gen(0)).matrix()  # L = 64 divides 512
    assert torch.allclose(exact.norm(dim=0), torch.ones(60), atol=1e-5)
    sq = torch.stack([make_projection("fastfood", 1000, 100, gen(s)).matrix().pow(2).sum(0) for s in range(5)])
    assert sq.mean().item() == pytest.approx(1.0, abs=0.05)
    # and it is a random subspace, not a fixed one: columns are nearly orthogonal, not identical
    gram = exact.T @ exact
    assert (gram - torch.eye(60)).abs().max() < 0.5


def test_sparse_density_follows_layer_sizes():
    p = SparseProjection(10_100, 200, gen(0), segments=[10_000, 100])
    rows = p.tensors["rows"].long()
    big, small = (rows < 10_000).sum().item(), (rows >= 10_000).sum().item()
    # per-layer density 1/sqrt(n): 10000·200/100 = 20000 and 100·200/10 = 2000 nonzeros expected
    assert big == pytest.approx(20_000, rel=0.05)
    assert small == pytest.approx(2_000, rel=0.1)
    assert set(p.tensors["vals"].sign().unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("d", [1, 10, 100, 1000, 10_000, 16_385, 20_490])
def test_fastfood_memory_is_order_D_whatever_d(d):
    D = 20_490  # Conv-2 on 28×28×1
    p = FastfoodProjection(D, d, gen(0))
    assert p.memory_bytes < 2 * 4 * D


def test_dense_refuses_over_budget_naming_budget_and_alternatives():
    with pytest.raises(DofbenchError, match=r"272474×10000 .* budget of 2.0 GiB .*sparse or fastfood"):
        make_projection("dense", 272_474, 10_000, gen(0))
    with pytest.raises(DofbenchError, match=r"budget"):
        make_projection("orthonormal", 272_474, 10_000, gen(0))
    # the alternatives do fit
    assert make_projection("fastfood", 272_474, 10_000, gen(0)).memory_bytes < 2 * 4 * 272_474


def test_auto_resolves_to_the_cheapest_that_fits():
    assert resolve_kind("auto", 15_210, 64) == "dense"
    assert resolve_kind("auto", 272_474, 10_000) == "fastfood"
    assert resolve_kind("auto", 1000, 10, auto_dense_bytes=0) == "fastfood"
    assert make_projection("auto", 272_474, 1000, gen(0)).kind == "fastfood"


@pytest.mark.parametrize("kind", KINDS)
def test_stacked_projections_apply_like_each_one(kind):
    projs = [make_projection(kind, 400, 33, gen(s), segments=[300, 100]) for s in range(3)]
    cls, static, tensors = stack_projections(projs)
    phi = torch.randn(3, 33, requires_grad=True)
    out = cls.apply_stacked(tensors, phi, **static)
    g = torch.randn(3, 400)
    (grad,) = torch.autograd.grad(out, phi, g)
    for k, p in enumerate(projs):
        assert torch.allclose(out[k], p(phi[k]), atol=1e-5)
        # the stacked backward is each seed's Aᵀ g
        assert torch.allclose(grad[k], p.matrix().T @ g[k], atol=1e-4)


def _spec(seed: int, kind: str) -> TrialSpec:
    return trial_spec(Host(use_env=False), {"name": "mlp", "params": {"hidden": [32]}},
                      {"name": "mnist1d", "params": {"num_samples": 600}},
                      {"name": "random-subspace", "params": {"projection": kind}}, d=64, seed=seed,
                      train={"epochs": 8, "batch_size": 64})


def test_dense_sparse_and_fastfood_are_statistically_indistinguishable_on_mnist1d(tmp_path):
    """Same experiment, different random subspaces: over 8 seeds the mean best train accuracy of
    each pair differs by less than 3 standard errors (Welch), and all clearly learn."""
    worker = Worker(Runtime(device="cpu", cache_dir=str(tmp_path)), Host(use_env=False))
    acc = {}
    for kind in ("dense", "sparse", "fastfood"):
        res = worker.run_group([_spec(s, kind) for s in range(8)])
        assert all(r.status == "ok" and r.method_info["projection"] == kind for r in res)
        acc[kind] = torch.tensor([r.metrics["best_train_acc"] for r in res], dtype=torch.float64)
    for kind, a in acc.items():
        assert a.mean() > 0.2, (kind, a)  # chance is 0.1: they train
    for x, y in (("dense", "sparse"), ("dense", "fastfood"), ("sparse", "fastfood")):
        a, b = acc[x], acc[y]
        se = math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))
        assert abs(a.mean().item() - b.mean().item()) < 3 * se + 1e-9, (x, y, a.tolist(), b.tolist())


# ------------------------------------------------------------------------------ nested projections
@pytest.mark.parametrize("kind", KINDS)
def test_nested_projection_is_the_prefix_of_one_projection_per_seed(kind):
    """A_d = the first d columns of the seed's one projection, for d across block boundaries; an
    exact linear map like any other; another seed gives another projection."""
    D, seg = 1500, [500, 1000]
    big = make_projection(kind, D, 200, None, segments=seg, nested_seed=11).matrix()
    for d in (1, 63, 64, 65, 130, 200):
        p = make_projection(kind, D, d, None, segments=seg, nested_seed=11)
        assert torch.allclose(p.matrix(), big[:, :d], atol=1e-5 if kind == "orthonormal" else 0)
    phi = torch.randn(130)
    assert torch.allclose(make_projection(kind, D, 130, None, segments=seg, nested_seed=11)(phi), big[:, :130] @ phi,
                          atol=1e-5)
    other = make_projection(kind, D, 130, None, segments=seg, nested_seed=12).matrix()
    assert not torch.allclose(other, big[:, :130])
    with pytest.raises(DofbenchError, match="'auto' cannot be nested"):
        make_projection("auto", D, 10, None, nested_seed=1)


@pytest.mark.parametrize("kind", KINDS)
def test_nested_subspaces_are_marginally_the_independent_ones(kind):
    """Every nested A_d is still the random subspace of an independent draw: on a quadratic well
    (D = 200, 10 stiff directions among flat ones, from R = 1) the geometric success probability
    — does span(A_d) through θ0 reach loss ≤ ε — agrees with independent draws within error at
    every d, and per seed it is monotone in d (the minimum over a larger span is never higher)."""
    import numpy as np

    from dofbench.analysis.theory import spectrum, subspace_min_loss

    D, eps, dims, n = 200, 2e-3, (4, 8, 12, 16, 24), 300
    lam = spectrum("bimodal", D, k=10, lambda_k=1.0, lambda_rest=1e-4)
    rng = np.random.default_rng(0)
    hits = {"nested": {d: 0 for d in dims}, "independent": {d: 0 for d in dims}}
    for s in range(n):
        u = rng.standard_normal(D)
        theta0 = u / np.linalg.norm(u)
        nested_losses = []
        for d in dims:
            A_nested = make_projection(kind, D, d, None, segments=[D], nested_seed=s).matrix().double().numpy()
            A_indep = make_projection(kind, D, d, gen(10_000 + 97 * s + d), segments=[D]).matrix().double().numpy()
            nested_losses.append(subspace_min_loss(lam, theta0, A_nested))
            hits["nested"][d] += nested_losses[-1] <= eps
            hits["independent"][d] += subspace_min_loss(lam, theta0, A_indep) <= eps
        assert all(a >= b - 1e-9 for a, b in zip(nested_losses, nested_losses[1:]))  # monotone per seed
    for d in dims:
        p1, p2 = hits["nested"][d] / n, hits["independent"][d] / n
        se = math.sqrt(max(p1 * (1 - p1) + p2 * (1 - p2), 1 / n) / n)
        assert abs(p1 - p2) <= 4 * se, (d, p1, p2)
    assert any(0.2 < hits["nested"][d] / n < 0.8 for d in dims)  # the comparison is made inside the transition
