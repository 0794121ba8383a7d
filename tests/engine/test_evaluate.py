"""Stateful metrics (torchmetrics through TorchMetric) evaluated over chunks and for K stacked
networks equal torchmetrics on the whole split's outputs, network by network; the additive
built-ins keep their fast path."""

from __future__ import annotations

import pytest
import torch

from dofbench.engine.evaluate import evaluate, evaluate_stacked
from dofbench.plugin import TorchMetric

tm = pytest.importorskip("torchmetrics.classification")


def _metrics(host):
    ece = TorchMetric(name="ece", factory=lambda info: tm.MulticlassCalibrationError(num_classes=info.num_classes,
                                                                                       n_bins=10),
                      higher_is_better=False, description="expected calibration error")
    auroc = TorchMetric(name="auroc", factory=lambda info: tm.MulticlassAUROC(num_classes=info.num_classes))
    f1 = TorchMetric(name="f1", factory=lambda info: tm.MulticlassF1Score(num_classes=info.num_classes, average="macro"))
    return [host.get("metric", "loss"), host.get("metric", "acc"), ece, auroc, f1]


@pytest.fixture(scope="module")
def net_and_data(host, tiny_spec, tmp_path_factory):
    from dofbench.config.runtime import Runtime
    from dofbench.engine.worker import Worker

    worker = Worker(Runtime(device="cpu", cache_dir=str(tmp_path_factory.mktemp("cache"))), host)
    net, theta0, data = worker.build(tiny_spec("random-subspace"))
    g = torch.Generator().manual_seed(0)
    thetas = torch.stack([theta0 + 0.3 * torch.randn(theta0.shape, generator=g) for _ in range(3)])
    return net, thetas, data


def _direct(net, theta, data, split, num_classes):
    x, y = data.split(split)
    with torch.no_grad():
        out = net.forward(theta, x)
    return {"ece": tm.MulticlassCalibrationError(num_classes=num_classes, n_bins=10)(out, y).item(),
            "auroc": tm.MulticlassAUROC(num_classes=num_classes)(out, y).item(),
            "f1": tm.MulticlassF1Score(num_classes=num_classes, average="macro")(out, y).item(),
            "acc": (out.argmax(-1) == y).double().mean().item()}


@pytest.mark.parametrize("batch_size", [4096, 96])  # one chunk, and many (and uneven) chunks
def test_stacked_and_single_evaluations_equal_torchmetrics_on_the_same_outputs(host, net_and_data, batch_size):
    import torch.nn.functional as F

    net, thetas, data = net_and_data
    metrics = _metrics(host)
    stacked = evaluate_stacked(net, thetas, data, metrics, F.cross_entropy, batch_size=batch_size)
    for j, theta in enumerate(thetas):
        single = evaluate(net, theta, data, metrics, F.cross_entropy, batch_size=batch_size)
        for split in ("train", "test"):
            want = _direct(net, theta, data, split, data.info.num_classes)
            for name, v in want.items():
                assert stacked[j][f"{split}_{name}"] == pytest.approx(v, abs=1e-5), (j, split, name)
                assert single[f"{split}_{name}"] == pytest.approx(v, abs=1e-5), (j, split, name)
    # the three networks differ, so a mix-up of states would show
    assert len({round(r["train_ece"], 6) for r in stacked}) == 3


def test_a_metric_that_is_not_one_number_is_refused(host, net_and_data):
    import torch.nn.functional as F

    from dofbench.errors import DofbenchError

    net, thetas, data = net_and_data
    per_class = TorchMetric(name="f1c", factory=lambda info: tm.MulticlassF1Score(num_classes=info.num_classes,
                                                                                  average=None))
    with pytest.raises(DofbenchError, match=r"metric 'f1c': compute\(\) returned a tensor of shape \(10,\); a dofbench "
                                            r"metric is one number"):
        evaluate(net, thetas[0], data, [per_class], F.cross_entropy)


def test_the_builtins_stay_additive(host):
    for name in ("loss", "acc"):
        assert host.get("metric", name).accumulator(1, None) is None
