"""Gaussian widths by Monte Carlo against closed forms; the projected ellipsoid; predictions."""

import math

import numpy as np
import pytest

from dofbench.analysis import theory as T


def test_chi_mean():
    assert T.chi_mean(1) == pytest.approx(math.sqrt(2 / math.pi))
    assert T.chi_mean(2) == pytest.approx(math.sqrt(math.pi / 2))
    assert T.chi_mean(10_000) == pytest.approx(100, rel=1e-4)


def test_monte_carlo_width_of_simple_sets_matches_closed_forms():
    D = 200
    ball = T.gaussian_width(T.ball_support(2.5), D, n=2000, seed=1)
    assert ball.within(T.ball_width(D, 2.5))
    sub = T.gaussian_width(T.subspace_ball_support(7), D, n=2000, seed=2)
    assert sub.within(T.chi_mean(7))
    r = np.linspace(0.1, 3, D)
    ell = T.gaussian_width(T.ellipsoid_support(r), D, n=2000, seed=3)
    lo, hi = T.ellipsoid_width_bounds(r)
    assert lo < ell.mean < hi
    # one dominant axis: the width approaches the lower bound √(2/π)·r_1
    spike = np.array([10.0] + [1e-4] * (D - 1))
    w = T.gaussian_width(T.ellipsoid_support(spike), D, n=4000, seed=4)
    assert w.within(T.ellipsoid_width_bounds(spike)[0], slack=0.01)
    # the estimate can fail: a wrong closed form is rejected
    assert not ball.within(T.ball_width(D, 2.6))


def test_cone_projection_matches_brute_force_in_three_dimensions():
    rng = np.random.default_rng(0)
    M = np.array([1.0, 4.0, 0.3]) / 0.4
    for _ in range(3):
        th0 = rng.standard_normal(3)
        th0 *= rng.uniform(1.1, 3) / np.sqrt(np.sum(M * th0 * th0))
        g = rng.standard_normal((40, 3))
        got = T._cone_projection_norms(g, M, np.tile(th0, (40, 1)))
        z = rng.standard_normal((200_000, 3))
        pts = z / np.linalg.norm(z, axis=1, keepdims=True) / np.sqrt(M)   # the ellipsoid's surface
        dirs = pts - th0
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        brute = np.maximum(0, (g @ dirs.T).max(axis=1))
        assert np.abs(got - brute).max() < 2e-3


def test_projected_ball_is_a_circular_cone():
    # a ball of radius r seen from distance R is a circular cone with sin α = r/R: δ = D sin²α + O(1)
    D, r, R = 400, 0.3, 1.0
    pw = T.projected_width(np.ones(D), 0.5 * r * r, R, n=300, seed=0)
    assert pw.small_form is None                  # r = 0.3 R: too large for the small-ellipsoid form
    assert abs(pw.w2 - D * r * r) < 2 + 4 * pw.statistical_dimension.stderr
    assert pw.width.mean ** 2 <= pw.w2 + 1e-9
    small = T.projected_width(np.ones(1000), 0.5 * 0.07 ** 2, R, n=300, seed=0)
    assert small.small_form == pytest.approx(1000 * 0.07 ** 2) and abs(small.w2 - small.small_form) < 2
    # θ0 inside the sub-level set: every subspace meets it
    inside = T.projected_width(np.ones(50), 2.0, 1.0, n=50)
    assert inside.w2 == pytest.approx(50, rel=0.3) and inside.d_star < 15


def test_predictions_order_and_gordon_bound():
    lam = T.spectrum("bimodal", 300, k=15, lambda_k=1.0, lambda_rest=1e-4)
    loose = T.projected_width(lam, 0.003, 1.0, n=200, seed=0)
    strict = T.projected_width(lam, 0.0005, 1.0, n=200, seed=0)
    assert strict.d_star > loose.d_star                      # d* grows as ε gets stricter
    p = T.predict_d_star(300, loose.w2, 0.1, loose.intrinsic_sd)
    assert p.rigorous_lo <= p.lo <= p.d_star <= p.hi <= p.rigorous_hi
    assert T.gordon_success_bound(1, 300, 2.0) < 1e-3 and T.gordon_success_bound(299, 300, 10.0) == 1.0
    lo, hi = T.kinematic_success_bounds(250, 300, 250)
    assert lo > 0.5 and hi == 1.0
    # the geometric P_s of a perfect optimizer is ~0 below the predicted interval and ~1 above
    low = T.exact_success_probability(lam, 0.003, 1.0, max(1, int(p.lo) - 6), n=30, seed=1)
    high = T.exact_success_probability(lam, 0.003, 1.0, int(p.hi) + 6, n=30, seed=1)
    assert low.mean <= 0.1 and high.mean >= 0.9


def test_lanczos_and_hessian_vector_products():
    import torch

    from dofbench.analysis.hessian import LanczosResult, hvp_fn, lanczos

    lam = torch.linspace(0.01, 5.0, 300, dtype=torch.float64)
    f = lambda th: 0.5 * (lam * th * th).sum()  # noqa: E731
    hv = hvp_fn(f, torch.randn(300, dtype=torch.float64))
    v = torch.randn(300, dtype=torch.float64)
    assert torch.allclose(hv(v), lam * v)
    gen = torch.Generator().manual_seed(0)
    res = lanczos(hv, 300, 40, generator=gen, dtype=torch.float64)
    assert res.ritz.max() == pytest.approx(5.0, rel=1e-2) and res.ritz.min() == pytest.approx(0.01, abs=0.02)
    assert res.weights.sum() == pytest.approx(1.0)
    spec = res.spectrum(floor=1e-3)
    assert len(spec) == 300 and spec.max() == pytest.approx(5.0, rel=1e-2)
    assert abs(spec.mean() - float(lam.mean())) < 0.25      # one-probe quadrature: the trace within ~10%
    assert LanczosResult(np.array([-1.0, 2.0]), np.array([0.5, 0.5]), 4).spectrum(0.1).min() == 0.1


def test_the_gated_hessian_prediction_on_an_exact_quadratic_well(tmp_path, worker, tiny_spec):
    """Where the local quadratic model holds — an exact quadratic well, trained to its minimum —
    the gates pass and the Hessian prediction is the quadratic theory's (with the same cap: semi-axes
    are cut at the trust radius, the distance the model was checked out to)."""
    import torch

    from dofbench.analysis.hessian import local_quadratic, quadratic_d_star
    from dofbench.engine.loop import train_full

    spec = tiny_spec("random-subspace", d=4, model="quadratic-point", model_params={"R": 1.0},
                     dataset={"name": "quadratic-well", "params": {"dim": 300, "k": 15, "lambda_rest": 1e-3}},
                     train={"epochs": 1, "batch_size": 1})
    net, theta0, data = worker.build(spec)
    theta_T, _ = train_full(net, theta0, data, steps=400, lr=0.5, batch_size=1,
                            generator=torch.Generator().manual_seed(0), loss_fn=data.loss)
    lq = local_quadratic(net, theta0, theta_T, data, data.loss, k=40, probes=3)
    assert lq.negative_mass == 0 and lq.gradient_flat_share < 0.05 and lq.R == pytest.approx(1.0, abs=1e-3)
    lam = T.spectrum("bimodal", 300, k=15, lambda_k=1.0, lambda_rest=1e-3)
    [pred] = quadratic_d_star(lq, [0.003], samples=200)
    assert pred.status == "ok" and pred.trust_radius > 1
    exact = T.projected_width(lam, 0.003, 1.0, n=200, seed=0, cap=pred.trust_radius)
    assert abs(pred.w2 - exact.w2) < 4 * math.hypot(pred.w2_se, exact.statistical_dimension.stderr) + 1


def test_theory_hessian_command_on_a_tiny_network(tmp_path, invoke):
    import json


    cfg = tmp_path / "n.toml"
    cfg.write_text("""
[suites.net]
models   = [{ name = "mlp", params = { hidden = [8] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 300 } }]
methods  = ["random-subspace"]
dims     = [4]
seeds    = 1
[suites.net.threshold]
metric   = "best_train_loss"
epsilons = [1.5, 0.01]
""")
    db = tmp_path / "r.duckdb"
    res = invoke("theory", "hessian", "net", "--config", str(cfg), "--db", str(db), "--steps", "60",
                 "--lanczos", "12", "--samples", "20", "--format", "json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.output)
    assert [r["epsilon"] for r in rows] == [1.5, 0.01]
    for r in rows:                                              # a number, or why not
        assert r["status"] in ("ok", "not applicable")
        assert r["status"] == "ok" and 0 <= r["d_star_pred"] <= r["D"] or r["reason"] and r["d_star_pred"] is None
    assert rows[1]["status"] == "not applicable"               # below the trained loss: no prediction
    stored = invoke("query", "--db", str(db), "--format", "json",
                    "select epsilon, status, reason, w2 from predictions order by epsilon")
    assert [r["status"] for r in json.loads(stored.output)] == [rows[1]["status"], rows[0]["status"]]
    bad = invoke("theory", "hessian", "net", "--config", str(cfg), "--db", str(db), "--epsilon", "0")
    assert bad.exit_code != 0 and "Traceback" not in bad.stderr
