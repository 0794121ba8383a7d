"""A torchmetrics calibration error registered by a plugin is stored for every trial of a suite,
batched (seeds in one stack) and single alike, and equals torchmetrics computed directly on the
same outputs (θ0 at step 0, where every method of the suite starts)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("torchmetrics")

PLUGIN = '''
from torchmetrics.classification import MulticlassCalibrationError

from dofbench.plugin import TorchMetric, hookimpl


@hookimpl
def dofbench_metrics():
    return [TorchMetric(name="ece", higher_is_better=False, description="Expected calibration error (15 bins).",
                        factory=lambda info: MulticlassCalibrationError(num_classes=info.num_classes, n_bins=15))]
'''

SUITE = '''
[suites.calib]
models   = [{ name = "mlp", params = { hidden = [16] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 600 } }]
methods  = ["random-subspace", "full"]
dims     = [4, 32]
seeds    = 3
train    = { epochs = 2, batch_size = 64 }
[suites.calib.threshold]
metric   = "best_test_ece"
epsilons = [0.3]
'''


def test_a_torchmetrics_metric_is_stored_for_every_trial_batched_and_single(tmp_path, one_thread):
    from torchmetrics.classification import MulticlassCalibrationError

    from dofbench import Session
    from dofbench.config.runtime import Runtime
    from dofbench.engine.worker import Worker

    (tmp_path / "calib_plugin.py").write_text(PLUGIN)
    (tmp_path / "calib.toml").write_text(SUITE)
    s = Session(db=tmp_path / "r.duckdb", plugins=[str(tmp_path / "calib_plugin.py")], config=tmp_path / "calib.toml",
                use_env=False)
    (summary,) = s.run(["calib"], executor="local")
    assert summary.ok == 9, summary.errors
    rows = s.query("select trial_id, method, d, seed, metrics, method_info, spec from trials order by method, d, seed").records()
    batched = [r for r in rows if json.loads(r["method_info"]).get("batched")]
    single = [r for r in rows if not json.loads(r["method_info"]).get("batched")]
    assert {r["method"] for r in batched} == {"random-subspace"} and len(batched) == 6
    assert {r["method"] for r in single} == {"full"} and len(single) == 3
    for r in rows:
        m = json.loads(r["metrics"])
        for key in ("train_ece", "test_ece", "best_train_ece", "best_test_ece"):
            assert 0.0 <= m[key] <= 1.0, (r["method"], key)
    # step 0 is θ0 for both methods: the stored value equals torchmetrics on the network's outputs there
    evals = {(t, split): v for t, split, v in s.query(
        "select trial_id, split, value from evals where metric = 'ece' and step = 0").rows}
    worker = Worker(Runtime(device="cpu", cache_dir=str(tmp_path / "cache")), s.host)
    from dofbench.config.schemas import TrialSpec

    for r in rows:
        net, theta0, data = worker.build(TrialSpec.model_validate(json.loads(r["spec"])))
        for split in ("train", "test"):
            x, y = data.split(split)
            with torch.no_grad():
                want = MulticlassCalibrationError(num_classes=10, n_bins=15)(net.forward(theta0, x), y).item()
            assert evals[(r["trial_id"], split)] == pytest.approx(want, abs=1e-6), (r["method"], r["seed"], split)
    # the suite's threshold metric is the plugin's: lower is better, d* and the curves use it
    lb = s.query("select metric, d_star from leaderboard where method = 'random-subspace'").records()
    assert lb[0]["metric"] == "best_test_ece"
    (curves,) = [p for p in s.plot(["curves"], suite="calib") if p.kind == "curves"]
    assert {p["metric"] for p in curves.panels} == {"ece"}
