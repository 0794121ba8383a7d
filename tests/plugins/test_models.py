"""The paper's networks: exact D, initialisation, BatchNorm under the functional trainer, timm."""

import math

import pytest
import torch

from dofbench.cli.session import Session
from dofbench.engine.data import DataBundle, DatasetInfo
from dofbench.errors import DofbenchError
from dofbench.engine.flat import FlatNet, count_params
from dofbench.run.host import Host
from dofbench.engine.evaluate import evaluate

MNIST = DatasetInfo((1, 28, 28), 10, 100, 10, "test")
CIFAR = DatasetInfo((3, 32, 32), 10, 100, 10, "test")


@pytest.fixture(scope="module")
def host():
    return Host([], use_env=False)


def build(host, name, params, info):
    comp = host.get("model", name)
    return comp.build(comp.parse_params(params), info)


@pytest.mark.parametrize("name,params,info,D", [
    ("conv", {}, MNIST, 20_490),                              # Conv-2 on 28×28×1
    ("conv", {"channels": [16, 32]}, CIFAR, 25_578),          # Conv-2 on 32×32×3
    ("conv", {"channels": [32, 64, 64]}, MNIST, 61_514),      # Conv-3 on 28×28×1
    ("lenet5", {}, MNIST, 44_426),                            # Li et al.'s LeNet-5
    ("fc", {}, MNIST, 199_210),                               # 784–200–200–10
    ("resnet20", {}, CIFAR, 272_474),                         # the paper's ResNet20v1 (projection shortcuts)
    ("resnet20", {"shortcut": "identity"}, CIFAR, 269_722),   # He et al.'s option A
])
def test_models_have_the_papers_D(host, name, params, info, D):
    net = build(host, name, params, info)
    assert count_params(net) == FlatNet(net).D == D
    assert net(torch.zeros(2, *info.input_shape)).shape == (2, 10)


def test_resnet_counts_batchnorm_scale_and_shift_not_running_statistics(host):
    net = build(host, "resnet20", {}, CIFAR)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 18 + 2  # stem, two per block, two projection shortcuts
    affine = sum(m.weight.numel() + m.bias.numel() for m in bns)
    convs = sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    head = 64 * 10 + 10
    assert affine + convs + head == FlatNet(net).D
    running = sum(b.numel() for n, b in net.named_buffers() if "running" in n)
    assert running == affine  # mean and variance per channel, as many as scale and shift, not in D


def test_conv_init_is_lecun_normal_with_zero_biases(host):
    net = build(host, "conv", {"channels": [32, 64, 64]}, MNIST)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    for m in convs:
        assert torch.count_nonzero(m.bias) == 0
        fan_in = m.weight[0].numel()
        assert m.weight.std().item() == pytest.approx(1 / math.sqrt(fan_in), rel=0.15)
    assert [m.out_channels for m in convs] == [32, 64, 64]
    assert all(m.kernel_size == (3, 3) for m in convs)


def test_conv_nets_are_not_vmapped_and_reject_non_images(host):
    for name in ("conv", "lenet5", "resnet20", "timm"):
        comp = host.get("model", name)
        assert comp.batchable(comp.parse_params({})) is False
    assert host.get("model", "fc").batchable(host.get("model", "fc").parse_params({})) is True
    with pytest.raises(DofbenchError, match=r"model 'conv' needs image inputs .* input shape is \(40,\)"):
        build(host, "conv", {}, DatasetInfo((40,), 10, 1, 1, "x"))
    with pytest.raises(DofbenchError, match="6n\\+2"):
        build(host, "resnet20", {"depth": 21}, CIFAR)


def test_list_models_shows_D_for_a_dataset(invoke):
    res = invoke("list", "models", "--dataset", "mnist")
    assert res.exit_code == 0
    rows = {line.split()[0]: line for line in res.output.splitlines() if line.strip()}
    assert "D=20490 on mnist" in rows["conv"]
    assert "D=44426 on mnist" in rows["lenet5"]
    assert "D=199210 on mnist" in rows["fc"]


def _tiny_bn_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3))
    return net


def test_batchnorm_train_steps_update_running_statistics_and_evaluate_uses_them():
    net = _tiny_bn_net()
    flat = FlatNet(net)
    theta = flat.flatten()
    x = torch.randn(32, 1, 8, 8) * 3 + 1
    bn = net[1]
    assert flat.D == count_params(net)  # running statistics are not in D
    flat.train()
    flat.forward(theta, x)
    assert not torch.allclose(bn.running_mean, torch.zeros(4))  # updated in place by the step
    stats = bn.running_mean.clone(), bn.running_var.clone()

    data = DataBundle(x, torch.zeros(32, dtype=torch.long), x[:8], torch.zeros(8, dtype=torch.long),
                      DatasetInfo((1, 8, 8), 3, 32, 8, "x"))
    host = Host([], use_env=False)
    metrics = [c for c, _ in host.components("metric")]
    res = evaluate(flat, theta, data, metrics, torch.nn.functional.cross_entropy)
    assert flat.training  # mode restored
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])  # not updated
    net.eval()
    with torch.no_grad():
        expect = torch.nn.functional.cross_entropy(net(x), data.y_train).item()
    assert res["train_loss"] == pytest.approx(expect, rel=1e-5)  # eval mode: running statistics
    net.train()
    with torch.no_grad():
        batch_stats = torch.nn.functional.cross_entropy(net(x), data.y_train).item()
    assert batch_stats != pytest.approx(expect, rel=1e-3)  # so the mode really matters

    flat.reset_buffers()
    assert torch.equal(bn.running_mean, torch.zeros(4)) and torch.equal(bn.running_var, torch.ones(4))


SUITES = """
[suites.resnet-tiny]
models   = [{ name = "resnet20", params = { depth = 8, width = 4 } }]
datasets = [{ name = "digits", params = { subsample = 200, test_subsample = 50 } }]
methods  = ["random-subspace"]
dims     = [32]
seeds    = 1
train    = { epochs = 1, batch_size = 50 }
[suites.resnet-tiny.threshold]
metric   = "best_train_acc"
epsilons = [0.1]

[suites.timm-tiny]
models   = [{ name = "timm", params = { arch = "test_resnet" } }]
datasets = [{ name = "digits", params = { subsample = 100, test_subsample = 50 } }]
methods  = ["random-subspace"]
dims     = [8]
seeds    = 1
train    = { epochs = 1, batch_size = 50, max_steps = 2 }
[suites.timm-tiny.threshold]
metric   = "best_train_acc"
epsilons = [0.1]
"""


@pytest.fixture()
def suites(tmp_path):
    path = tmp_path / "suites.toml"
    path.write_text(SUITES)
    return path


def test_resnet_with_batchnorm_trains_in_a_random_subspace(tmp_path, suites):
    s = Session(db=tmp_path / "r.duckdb", config=suites, device="cpu")
    s.run(["resnet-tiny"], executor="local")
    row = s.query("select status, error, total_params, d_used, steps, train_loss, best_train_acc "
                  "from trials").records()[0]
    assert row["status"] == "ok", row["error"]
    assert row["d_used"] == 32 and row["steps"] == 4
    assert math.isfinite(row["train_loss"])
    comp = Host([], use_env=False).get("model", "resnet20")
    assert row["total_params"] == count_params(comp.build(comp.parse_params({"depth": 8, "width": 4}),
                                                          DatasetInfo((1, 8, 8), 10, 1, 1, "x")))


def test_a_timm_model_runs_a_random_subspace_trial_end_to_end(tmp_path, suites):
    s = Session(db=tmp_path / "t.duckdb", config=suites, device="cpu")
    s.run(["timm-tiny"], executor="local")
    row = s.query("select status, error, model_params, total_params, d_used, steps, train_acc, test_acc "
                  "from trials").records()[0]
    assert row["status"] == "ok", row["error"]
    assert row["d_used"] == 8 and row["steps"] == 2
    import timm

    assert row["total_params"] == count_params(timm.create_model("test_resnet", num_classes=10, in_chans=1))
    assert 0 <= row["train_acc"] <= 1 and 0 <= row["test_acc"] <= 1


def test_timm_rejects_an_unknown_architecture(host):
    with pytest.raises(DofbenchError, match="not a timm architecture"):
        build(host, "timm", {"arch": "no-such-net"}, MNIST)
