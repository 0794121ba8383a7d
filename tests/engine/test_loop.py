"""The science of the shared trainer, the flat parametrisation, the projection and the optimizer."""

import math

import pytest
import torch

from dofbench.cli.session import Session
from dofbench.errors import DofbenchError
from dofbench.engine.flat import FlatNet
from dofbench.engine.optim import PaperAdam
from dofbench.engine.projections import DenseProjection
from dofbench.engine.loop import batch_order


def test_flatnet_roundtrip_and_functional_forward():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    flat = FlatNet(net)
    theta = flat.flatten()
    assert flat.D == theta.numel() == 3 * 4 + 4 + 4 * 2 + 2
    x = torch.randn(5, 3)
    assert torch.allclose(flat.forward(theta, x), net(x))
    assert torch.allclose(flat.forward(theta * 0, x), torch.zeros(5, 2))


def test_plain_stack_forward_equals_the_module_and_hooks_keep_functional_call():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Tanh(),
                              torch.nn.Linear(5, 3))
    flat = FlatNet(net)
    assert flat._stack_plan is not None  # runs on views of θ, not through functional_call
    theta = (flat.flatten() + 0.1 * torch.randn(flat.D)).requires_grad_(True)
    x = torch.randn(4, 2, 3)
    out = flat.forward(theta, x)
    torch.nn.utils.vector_to_parameters(theta.detach(), net.parameters())
    ref = net(x)
    assert torch.allclose(out, ref, atol=1e-6)
    (g,) = torch.autograd.grad(out.square().sum(), theta)
    ref.square().sum().backward()
    assert torch.allclose(g, torch.cat([p.grad.reshape(-1) for p in net.parameters()]), atol=1e-6)

    calls = []
    hooked = torch.nn.Sequential(torch.nn.Linear(6, 3))
    hooked[0].register_forward_hook(lambda m, i, o: calls.append(o.shape))
    flat = FlatNet(hooked)
    assert flat._stack_plan is None  # a hook only the module's own call runs: functional_call
    flat.forward(flat.flatten(), torch.randn(2, 6))
    assert calls == [torch.Size([2, 3])]


@pytest.mark.parametrize("module,shape,plan", [
    (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.Tanh(),
                         torch.nn.Sequential(torch.nn.Linear(7, 5, bias=False), torch.nn.ReLU()),
                         torch.nn.Linear(5, 3)), (3, 4), True),
    (torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU(), torch.nn.Linear(6, 2)), (5, 4), True),
    # a ReLU after a linear layer runs in place on its output (with extra leading axes too); a
    # second ReLU does not
    (torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.ReLU(), torch.nn.Linear(6, 2)),
     (2, 4), True),
    # layers of 16 or more outputs run as h Wᵀ, narrower ones as (W hᵀ)ᵀ on CPU (flat.NARROW_OUT)
    (torch.nn.Sequential(torch.nn.Linear(4, 20), torch.nn.ReLU(), torch.nn.Linear(20, 16, bias=False),
                         torch.nn.Linear(16, 15)), (6, 4), True),
    (torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 2)), (1, 4, 4), False),
])
def test_stacked_forward_equals_vmapped_forward_with_gradients(module, shape, plan):
    flat = FlatNet(module)
    assert (flat._stack_plan is not None) == plan  # plain stacks of linear layers run as batched products
    torch.manual_seed(0)
    thetas = (flat.flatten() + 0.1 * torch.randn(3, flat.D)).requires_grad_(True)
    x = torch.randn(3, 8, *shape)
    out = flat.stacked_forward(thetas, x)
    ref_thetas = thetas.detach().clone().requires_grad_(True)
    ref = torch.func.vmap(flat.forward)(ref_thetas, x)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    w = torch.randn_like(ref)
    (g,) = torch.autograd.grad((out * w).sum(), thetas)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), ref_thetas)
    assert torch.allclose(g, g_ref, atol=1e-5)
    for k in range(3):  # and each network is the module at its own θ
        assert torch.allclose(out[k], flat.forward(thetas[k].detach(), x[k]), atol=1e-5)


def test_stacked_evaluation_equals_one_network_at_a_time():
    from dofbench.engine.data import DataBundle, DatasetInfo
    from dofbench.plugin.components import FunctionMetric
    from dofbench.engine.evaluate import evaluate, evaluate_stacked

    torch.manual_seed(0)
    flat = FlatNet(torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)))
    x, y = torch.randn(50, 6), torch.randint(0, 3, (50,))
    data = DataBundle(x[:40], y[:40], x[40:], y[40:], DatasetInfo((6,), 3, 40, 10, "random"))
    metrics = [
        FunctionMetric(name="loss", fn=lambda o, t: torch.nn.functional.cross_entropy(o, t, reduction="sum")),
        FunctionMetric(name="acc", fn=lambda o, t: (o.argmax(-1) == t).sum(),
                       stacked_fn=lambda o, t: (o.argmax(-1) == t).sum(-1)),
        FunctionMetric(name="top2", fn=lambda o, t: (o.topk(2, -1).indices == t[:, None]).any(-1).sum()),  # vmapped
        FunctionMetric(name="pos", fn=lambda o, t: torch.tensor(float((o[:, 0] > 0).sum().item()))),  # looped
    ]
    thetas = flat.flatten() + 0.5 * torch.randn(4, flat.D)
    stacked = evaluate_stacked(flat, thetas, data, metrics, torch.nn.functional.cross_entropy, batch_size=28)
    for theta, got in zip(thetas, stacked):
        want = evaluate(flat, theta, data, metrics, torch.nn.functional.cross_entropy, batch_size=7)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-5), key
    assert len({round(s["train_loss"], 6) for s in stacked}) == 4


@pytest.mark.parametrize("loss_fn", [torch.nn.functional.cross_entropy,
                                     lambda o, t: ((o.softmax(-1) - torch.nn.functional.one_hot(t, 3)) ** 2).mean()])
def test_stacked_loss_is_each_networks_loss(loss_fn):
    from dofbench.engine.evaluate import stacked_loss

    torch.manual_seed(0)
    outputs, targets = torch.randn(4, 9, 3), torch.randint(0, 3, (4, 9))
    got = stacked_loss(loss_fn, outputs, targets)
    assert torch.allclose(got, torch.stack([loss_fn(o, t) for o, t in zip(outputs, targets)]), atol=1e-6)
    shared = stacked_loss(loss_fn, outputs, targets[0], shared_targets=True)
    assert torch.allclose(shared, torch.stack([loss_fn(o, targets[0]) for o in outputs]), atol=1e-6)


def test_dense_projection_is_the_papers():
    g = torch.Generator().manual_seed(0)
    p = DenseProjection(500, 20, g)
    assert torch.allclose(p.A.norm(dim=0), torch.ones(20), atol=1e-5)  # unit-norm columns
    gram = p.A.T @ p.A
    assert (gram - torch.eye(20)).abs().max() > 0.01  # not orthogonalised
    o = DenseProjection(500, 20, torch.Generator().manual_seed(0), orthonormal=True)
    assert torch.allclose(o.A.T @ o.A, torch.eye(20), atol=1e-5)
    again = DenseProjection(500, 20, torch.Generator().manual_seed(0))
    assert torch.equal(again.A, p.A)
    raw = torch.randn(500, 20, generator=torch.Generator().manual_seed(0))  # A is drawn row by row
    assert torch.allclose(p.A, raw / raw.norm(dim=0), atol=1e-6)
    phi = torch.randn(20)
    assert torch.allclose(p(phi), p.matrix() @ phi)


def test_dense_projection_refuses_over_budget_before_allocating():
    with pytest.raises(DofbenchError, match=r"dense 272474×10000 matrix needs 10.2 GiB, over the budget .*sparse or fastfood"):
        DenseProjection(272_474, 10_000, torch.Generator(), budget_bytes=2 * 1024**3)


def test_paper_adam_uses_constant_bias_correction():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = PaperAdam([p], lr=0.1, betas=(0.9, 0.999), eps=0.0)
    p.grad = torch.ones(1)
    opt.step()
    # m = 0.1, v = 0.001 → m/(1-β1) = 1, sqrt(v/(1-β2)) = 1 → step = lr
    assert p.item() == pytest.approx(-0.1)
    p.grad = torch.ones(1)
    opt.step()
    m, v = 0.9 * 0.1 + 0.1, 0.999 * 0.001 + 0.001
    assert p.item() == pytest.approx(-0.1 - 0.1 * (m / 0.1) / math.sqrt(v / 0.001))
    # torch Adam's first step would be exactly lr too; the second differs
    q = torch.nn.Parameter(torch.zeros(1))
    ref = torch.optim.Adam([q], lr=0.1, eps=0.0)
    for _ in range(2):
        q.grad = torch.ones(1)
        ref.step()
    assert q.item() != pytest.approx(p.item())


def test_batch_order_is_a_permutation_per_epoch():
    g = torch.Generator().manual_seed(1)
    batches = batch_order(10, 4, 6, g)
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(batches[:3]).tolist()) == list(range(10))


SCIENCE = """
[suites.science]
models   = [{ name = "mlp", params = { hidden = [16] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 2000 } }]
methods  = [{ name = "random-subspace" }, { name = "full", params = { optimizer = "adam", lr = 0.01 } }]
dims     = [2, 820]
seeds    = 1
train    = { epochs = 8, batch_size = 128 }
"""


def test_subspace_accuracy_goes_from_chance_to_full_training(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(SCIENCE)
    s = Session(tmp_path / "r.duckdb", config=cfg, use_env=False)
    s.run(["science"], executor="local")
    acc = {(m, d): a for m, d, a in s.query("select method, d, best_train_acc from trials").rows}
    full = acc[("full", 826)]
    assert full > 0.4  # full training learns MNIST-1D well above chance (0.1)
    assert acc[("random-subspace", 2)] < 0.2  # two directions: near chance
    assert acc[("random-subspace", 820)] > full - 0.08  # d ≈ D: close to full training
