"""The quadratic-well model/dataset pair: exact loss, θ0 at distance R, training in subspaces,
the theory's prediction stored next to the measured d*."""

import json

import numpy as np
import pytest
import torch

from dofbench.cli.session import Session
from dofbench.errors import DofbenchError

WELL = """
[suites.well]
models   = [{ name = "quadratic-point", params = { R = 1.0 } }]
datasets = [{ name = "quadratic-well", params = { dim = 120, k = 6, lambda_rest = 1e-4 } }]
methods  = ["random-subspace"]
dims     = [2, 8, 40]
seeds    = 3
train    = { epochs = 150, batch_size = 1, eval_every_epochs = 10 }
search   = { strategy = "STRATEGY" }
[suites.well.threshold]
metric   = "best_train_loss"
epsilons = [0.002]
"""


def test_loss_is_the_quadratic_and_theta0_is_at_distance_R(tmp_path):
    from dofbench.engine.worker import Worker

    cfg = tmp_path / "w.toml"
    cfg.write_text(WELL.replace("STRATEGY", "grid").replace("R = 1.0", "R = 2.5"))
    s = Session(db=tmp_path / "x.duckdb", config=cfg)
    resolved = s.resolve(["well"])[0]
    assert resolved.tasks[0].total_params == 120
    spec = resolved.trials[0]
    net, theta0, data = Worker(s.runtime, host=s.host).build(spec)
    assert float(theta0.norm()) == pytest.approx(2.5, rel=1e-5)
    lam = data.y_train[0]
    assert torch.allclose(lam[:6], torch.ones(6)) and torch.allclose(lam[6:], torch.full((114,), 1e-4))
    theta = torch.randn(120)
    loss = data.loss(net.forward(theta, data.x_train), data.y_train)
    assert float(loss) == pytest.approx(0.5 * float((lam * theta * theta).sum()), rel=1e-5)
    # another seed starts elsewhere at the same distance
    other = next(t for t in resolved.trials if t.seed != spec.seed)
    _, theta02, _ = Worker(s.runtime, host=s.host).build(other)
    assert not torch.allclose(theta0, theta02)
    assert float(theta02.norm()) == pytest.approx(2.5, rel=1e-5)


def test_bad_pairing_and_params_are_one_line_errors(tmp_path):
    bad = WELL.replace("STRATEGY", "grid").replace('"quadratic-well", params = { dim = 120, k = 6, lambda_rest = 1e-4 }',
                                                   '"mnist1d", params = { num_samples = 100 }')
    cfg = tmp_path / "bad.toml"
    cfg.write_text(bad)
    with pytest.raises(DofbenchError, match="quadratic-point needs a dataset of task 'quadratic'"):
        Session(config=cfg).resolve(["well"])
    cfg.write_text(WELL.replace("STRATEGY", "grid").replace("k = 6", "k = 500"))
    with pytest.raises(DofbenchError, match="k"):
        Session(config=cfg).resolve(["well"])


def test_trained_well_matches_the_theory_and_predictions_are_stored(tmp_path, invoke):
    cfg = tmp_path / "w.toml"
    cfg.write_text(WELL.replace("STRATEGY", "grid"))
    db = tmp_path / "r.duckdb"
    s = Session(db=db, config=cfg)
    s.run(["well"], executor="local")
    p = {r["d"]: r["successes"] for r in s.query("select d, successes from success").records()}
    assert p[2] == 0 and p[40] == 3           # 6 stiff directions: d = 2 cannot, d = 40 can
    res = invoke("theory", "suite", "well", "--config", str(cfg), "--db", str(db), "--samples", "100",
                 "--format", "json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.output)
    assert rows[0]["d_star_measured"].startswith("40") or rows[0]["d_star_measured"].startswith("8")
    pred = s.query("select d_star_pred, d_star_pred_lo, d_star_pred_hi, source from predictions").records()
    assert len(pred) == 1 and pred[0]["source"] == "quadratic-theory"
    assert 2 < pred[0]["d_star_pred"] <= 40 and pred[0]["d_star_pred_lo"] <= pred[0]["d_star_pred"]
    from dofbench.analysis.theory import exact_success_probability, spectrum

    lam = spectrum("bimodal", 120, k=6, lambda_k=1.0, lambda_rest=1e-4)
    assert exact_success_probability(lam, 0.002, 1.0, 40, n=20).mean == 1.0
    assert np.isfinite(pred[0]["d_star_pred_hi"])


def test_bimodal_seeds_start_near_or_far(tmp_path):
    """far_share of the seeds start at R_far (drawn from each seed's init seed, so a seed is always
    the same one); the theory declines a task without a single R."""
    from dofbench.engine.worker import Worker

    cfg = tmp_path / "w.toml"
    cfg.write_text(WELL.replace("STRATEGY", "grid").replace("R = 1.0", "R = 1.0, far_share = 0.5, R_far = 3.0")
                   .replace("seeds    = 3", "seeds    = 12"))
    s = Session(db=tmp_path / "x.duckdb", config=cfg)
    resolved = s.resolve(["well"])[0]
    worker = Worker(s.runtime, host=s.host)
    norms = [round(float(worker.build(t)[1].norm()), 4) for t in resolved.trials if t.d == 2]
    assert set(norms) == {1.0, 3.0} and norms == [round(float(worker.build(t)[1].norm()), 4)
                                                  for t in resolved.trials if t.d == 8]
    model = s.host.get("model", "quadratic-point")
    assert model.initial_distance(model.parse_params({"far_share": 0.5})) is None
    assert model.initial_distance(model.parse_params({})) == 1.0
