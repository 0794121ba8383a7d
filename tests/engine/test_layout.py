"""How a network is fed, which never changes what a trial is: channels-last inputs for the models
that ask for them, and evaluation chunks sized to the network's activations on the CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dofbench.engine.data import DataBundle, DatasetInfo
from dofbench.engine.evaluate import evaluate
from dofbench.engine.flat import EVAL_CHUNK_BYTES, MAX_EVAL_ROWS, MIN_EVAL_ROWS, FlatNet


def _conv(c_in: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(c_in, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))


@pytest.mark.parametrize("c_in", [1, 3])  # one channel: .contiguous(channels_last) would keep NCHW strides
def test_channels_last_inputs_reach_the_module_and_give_the_same_outputs_and_gradients(c_in):
    seen = []
    module = _conv(c_in)
    module[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].stride()))
    plain, laid = FlatNet(module), FlatNet(module, input_layout="channels_last")
    x = torch.randn(5, c_in, 8, 8)
    theta = (plain.flatten() + 0.1 * torch.randn(plain.D)).requires_grad_(True)
    out_plain = plain.forward(theta, x)
    (g_plain,) = torch.autograd.grad(out_plain.square().sum(), theta)
    out_laid = laid.forward(theta, x)
    (g_laid,) = torch.autograd.grad(out_laid.square().sum(), theta)
    assert seen == [x.stride(), (64 * c_in, 1, 8 * c_in, c_in)]
    assert torch.allclose(out_plain, out_laid, atol=1e-5) and torch.allclose(g_plain, g_laid, atol=1e-5)
    with pytest.raises(ValueError, match="input_layout 'nhwc'; allowed: None, channels_last"):
        FlatNet(module, input_layout="nhwc")


@pytest.mark.parametrize("module,shape,rows", [
    # the largest activation is the first conv's output: 4·8·8 floats = 1 KiB a row → the cap
    (_conv(1), (1, 8, 8), MAX_EVAL_ROWS),
    # 16·28·28 floats = 50,176 B a row (Conv-2's first activation): 8 MiB holds 167 rows → 128
    (torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                         torch.nn.Linear(16 * 28 * 28, 2)), (1, 28, 28), 128),
    # 64·64·64 floats = 1 MiB a row: 8 rows would fit, the floor is MIN_EVAL_ROWS
    (torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3, padding=1), torch.nn.Flatten(1), torch.nn.Flatten(0)), (1, 64, 64),
     MIN_EVAL_ROWS),
    # an MLP's rows are a few hundred bytes: the cap (the chunk every trial had before)
    (torch.nn.Sequential(torch.nn.Linear(40, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10)), (40,), MAX_EVAL_ROWS),
])
def test_evaluation_chunks_hold_the_largest_activation_within_the_budget(module, shape, rows):
    net = FlatNet(module)
    assert net.eval_rows(torch.randn(3, *shape)) == rows
    assert rows == MIN_EVAL_ROWS or rows == MAX_EVAL_ROWS or 2 * rows * 16 * 28 * 28 * 4 > EVAL_CHUNK_BYTES


def test_an_evaluation_in_chosen_chunks_equals_one_in_given_chunks(host):
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(16 * 14 * 14, 10))
    torch.manual_seed(1)
    x, y = torch.randn(300, 1, 28, 28), torch.randint(0, 10, (300,))
    data = DataBundle(x[:260], y[:260], x[260:], y[260:], DatasetInfo((1, 28, 28), 10, 260, 40, "random"))
    metrics = [host.get("metric", "loss"), host.get("metric", "acc")]
    net = FlatNet(module, input_layout="channels_last")
    theta = net.flatten()
    chosen = evaluate(net, theta, data, metrics, F.cross_entropy)  # 128-row chunks: three for the train split
    given = evaluate(FlatNet(module), theta, data, metrics, F.cross_entropy, batch_size=7)
    assert net.eval_rows(x) == 128
    for key, value in given.items():
        assert chosen[key] == pytest.approx(value, abs=1e-5), key


def test_the_vision_models_ask_for_channels_last_on_the_cpu_only_and_the_trial_id_ignores_it(host, worker, tiny_spec):
    conv = host.get("model", "conv")
    for name, auto_on_cpu in (("conv", "channels_last"), ("lenet5", "channels_last"), ("resnet20", None)):
        comp = host.get("model", name)
        assert comp.input_layout(comp.parse_params({}), "cpu") == auto_on_cpu
        assert comp.input_layout(comp.parse_params({}), "cuda") is None
        assert comp.input_layout(comp.parse_params({"layout": "channels-last"}), "cuda") == "channels_last"
        assert comp.input_layout(comp.parse_params({"layout": "contiguous"}), "cpu") is None
    assert host.get("model", "mlp").input_layout(host.get("model", "mlp").parse_params({}), "cpu") is None
    pytest.importorskip("sklearn")
    specs = [tiny_spec("random-subspace", d=8, model="conv", model_params={"channels": [4], **extra},
                       dataset={"name": "digits", "params": {}}) for extra in ({}, {"layout": "contiguous"})]
    assert specs[0].trial_id == specs[1].trial_id
    assert worker.build(specs[0])[0].input_layout == "channels_last"
    assert worker.build(specs[1])[0].input_layout is None
    assert conv.parse_params({}).layout == "auto"


def test_the_evaluation_chunk_enters_the_trial_id_only_where_it_did_before(tiny_spec):
    default = tiny_spec("random-subspace", train={"epochs": 2, "batch_size": 64})
    legacy = tiny_spec("random-subspace", train={"epochs": 2, "batch_size": 64, "eval_batch_size": 4096})
    other = tiny_spec("random-subspace", train={"epochs": 2, "batch_size": 64, "eval_batch_size": 500})
    assert default.train.eval_batch_size is None and legacy.train.eval_batch_size == 4096
    assert default.trial_id == legacy.trial_id != other.trial_id
    assert other.identity_payload()["train"] == {"epochs": 2, "batch_size": 64, "eval_batch_size": 500}
