"""Every plot kind drawn from a small stored suite: the data drawn equals what the store's views say,
and the files are real PNG/SVG images."""

from __future__ import annotations

import math
import shutil
import statistics

import pytest

from dofbench.report import plots
from dofbench.errors import DofbenchError
from dofbench.results.store import Store
from helpers import invoke, synthetic_result

SUITE = "synth"
D = 5000
DIMS = [4, 16, 64, 256]
SEEDS = [0, 1, 2]
EPSILONS = [0.3, 0.5, 0.7]
BURNIN_STEPS = [0, 16]


def _result(tid: str, method: str, params: dict, d: int, seed: int, acc: float | None, status: str = "ok",
            model_params: dict | None = None, tag: str = ""):
    evals = []
    if acc is not None:
        curve = [0.1, 0.1 + (acc - 0.1) * 0.6, acc]
        for step, v in zip((0, 10, 20), curve):
            evals += [(step, "train", "acc", v), (step, "test", "acc", v - 0.05), (step, "train", "loss", 2.3 * (1 - v))]
    metrics = {} if acc is None else {"train_acc": acc, "best_train_acc": acc, "test_acc": acc - 0.05,
                                      "best_test_acc": acc - 0.05, "train_loss": 2.3 * (1 - acc)}
    return synthetic_result(method, d, seed, acc, status=status, params=params,
                            identity={k: v for k, v in params.items() if k == "steps"},
                            model_params=model_params or {"hidden": [32]}, D=D, tag=tag, evals=evals,
                            metrics=metrics, dataset="mnist1d", train={"epochs": 3})


def synthetic_acc(method: str, d: int, seed: int, steps: int = 0) -> float:
    """A phase transition in log d: accuracy rises from 0.1 to 0.95 around d ≈ 60 / (1 + steps/8)."""
    centre = math.log(60 / (1 + steps / 8))
    jitter = ((seed * 7919 + d * 31) % 11 - 5) / 60
    return 0.1 + 0.85 / (1 + math.exp(-(math.log(d) - centre) * 1.6 + jitter))


def make_store(path, burnin: bool = True) -> Store:
    """A small suite written through Store.write_result: random (and burn-in) subspaces, the full
    baseline, one diverged and one failed trial."""
    store = Store(path)
    ids, baselines = [], set()
    i = 0

    def add(*args, **kw):
        nonlocal i
        r = _result(f"t{i:03d}", *args, **kw)
        store.write_result(r, SUITE)
        ids.append(r.trial_id)
        if r.spec.method.name == "full":
            baselines.add(r.trial_id)
        i += 1

    for d in DIMS:
        for s in SEEDS:
            add("random-subspace", {"projection": "dense"}, d, s, synthetic_acc("random-subspace", d, s))
            for t in BURNIN_STEPS if burnin else []:
                add("burn-in-subspace", {"projection": "dense", "steps": t}, d, s,
                    synthetic_acc("burn-in-subspace", d, s, t))
    for s in SEEDS:
        add("full", {}, D, s, 0.97)
    add("random-subspace", {"projection": "dense"}, DIMS[-1], 9, None, status="diverged")
    add("random-subspace", {"projection": "dense"}, DIMS[-1], 10, None, status="failed")
    store.register_suite(SUITE, "synthetic suite for plot tests", {"dims": DIMS}, "test", ids,
                         "best_train_acc", EPSILONS, 0.25, True, baselines=baselines)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("plots") / "synth.duckdb")


def _draw(store, kind, out=None):
    """Draw one kind (no files unless ``out``); the CLI test checks the files."""
    with store.read() as con:
        return plots.plot(con, kind, SUITE, out)


def test_phase_grid_equals_the_success_view(store, tmp_path):
    res = _draw(store, "phase")
    # one panel per method with a grid of d (not `full`, whose only d is D)
    assert [p["method"] for p in res.panels] == ["burn-in-subspace[steps=0]", "burn-in-subspace[steps=16]",
                                                 "random-subspace"]
    panel = next(p for p in res.panels if p["method"] == "random-subspace")
    assert panel["ds"] == DIMS and panel["epsilons"] == EPSILONS and panel["D"] == D
    cols, rows = store.query("select epsilon, d, p_success from success where suite = ? and method = ?",
                             [SUITE, "random-subspace"])
    view = {(e, d): p for e, d, p in rows}
    assert len(view) == len(DIMS) * len(EPSILONS)
    for i, e in enumerate(EPSILONS):
        for j, d in enumerate(DIMS):
            assert panel["p_success"][i][j] == view[(e, d)]
    # the grid is not trivial: at the loosest ε, P_s is 0 at d=4 and 1 at d=64; at d=256 the diverged
    # seed counts against P_s (3 of 4) and the failed one not at all
    assert panel["p_success"][0][0] == 0.0 and panel["p_success"][0][2] == 1.0
    assert panel["p_success"][0][-1] == 0.75
    lb = dict(store.query("select epsilon, d_star from leaderboard where suite=? and method='random-subspace'",
                          [SUITE])[1])
    assert panel["d_star"] == lb and any(v is not None for v in lb.values())
    assert panel["predicted"] == {}


def test_phase_overlays_the_predicted_curve(store, tmp_path):
    shutil.copy(store.path, tmp_path / "pred.duckdb")
    store = Store(tmp_path / "pred.duckdb")
    with store.write() as con:
        con.executemany("INSERT INTO predictions (suite, model, dataset, method, metric, epsilon, d_star_pred, "
                        "d_star_pred_lo, d_star_pred_hi, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [[SUITE, "mlp", "mnist1d", "random-subspace", "best_train_acc", e, 20.0 * (1 + i),
                          10.0 * (1 + i), 40.0 * (1 + i), "test"] for i, e in enumerate(EPSILONS)])
    res = _draw(store, "phase")
    panel = next(p for p in res.panels if p["method"] == "random-subspace")
    assert panel["predicted"] == {e: (20.0 * (1 + i), 10.0 * (1 + i), 40.0 * (1 + i)) for i, e in enumerate(EPSILONS)}
    assert next(p for p in res.panels if p["method"] == "burn-in-subspace[steps=16]")["predicted"] == {}


def test_ps_lines_follow_the_success_view(store, tmp_path):
    res = _draw(store, "ps")
    panel = next(p for p in res.panels if p["method"] == "burn-in-subspace[steps=16]")
    rows = store.query("select epsilon, d, p_success from success where suite=? and label=? order by epsilon, d",
                       [SUITE, "burn-in-subspace[steps=16]"])[1]
    assert panel["lines"] == {e: [(d, p) for e2, d, p in rows if e2 == e] for e in EPSILONS}


def test_accuracy_mean_and_spread_over_seeds(store, tmp_path):
    res = _draw(store, "accuracy")
    (panel,) = res.panels
    assert panel["D"] == D and panel["metric"] == "best_train_acc"
    pts = {d: (m, s, n) for d, m, s, n in panel["lines"]["random-subspace"]}
    for d in DIMS:
        accs = [synthetic_acc("random-subspace", d, s) for s in SEEDS]
        m, s, n = pts[d]
        assert n == len(SEEDS)  # the diverged and failed trials have no value
        assert m == pytest.approx(statistics.mean(accs)) and s == pytest.approx(statistics.stdev(accs))
    assert [x[0] for x in panel["lines"]["full"]] == [D]


def test_dstar_per_method_against_epsilon(store, tmp_path):
    res = _draw(store, "dstar")
    (panel,) = res.panels
    rows = store.query("select label, epsilon, d_star from leaderboard where suite=? order by label, epsilon", [SUITE])[1]
    expected: dict = {}
    for label, e, d in rows:
        expected.setdefault(label, []).append((e, d))
    assert panel["lines"] == expected
    # stricter ε needs more dimensions (or none on the grid suffices)
    rs = [d for _, d in panel["lines"]["random-subspace"]]
    assert rs[0] is not None and all(b is None or (a is not None and b >= a) for a, b in zip(rs, rs[1:]))


def test_sweep_draws_dstar_against_the_parameter_a_method_varies(store, tmp_path):
    res = _draw(store, "sweep")
    (panel,) = res.panels  # random-subspace and full have one configuration each: nothing swept
    assert (panel["method"], panel["param"]) == ("burn-in-subspace", "steps")
    assert set(panel["lines"]) == {f"ε={e:g}" for e in EPSILONS}
    for e in EPSILONS:
        expected = [(t, store.query("select d_star from leaderboard where suite=? and label=? and epsilon=?",
                                    [SUITE, f"burn-in-subspace[steps={t}]", e])[1][0][0]) for t in BURNIN_STEPS]
        assert panel["lines"][f"ε={e:g}"] == expected
    loose = [d for _, d in panel["lines"]["ε=0.3"]]
    assert loose[-1] < loose[0]  # burn-in lowers d* in the synthetic data


def test_curves_are_seed_means_of_evals(store, tmp_path):
    res = _draw(store, "curves")
    panel = next(p for p in res.panels if p["method"] == "random-subspace")
    assert sorted(panel["lines"]) == DIMS
    rows = store.query("select e.step, avg(e.value) from evals e join trials t using (trial_id) "
                       "where t.label='random-subspace' and t.d=64 and e.split='train' and e.metric='acc' "
                       "group by e.step order by e.step")[1]
    assert panel["lines"][64] == [(s, pytest.approx(v)) for s, v in rows]
    assert [s for s, _ in panel["lines"][64]] == [0, 10, 20]


def test_nothing_to_plot_and_bad_kind(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    r = _result("x", "random-subspace", {}, 4, 0, 0.5)
    store.write_result(r, "only")
    store.register_suite("only", "", {}, "t", [r.trial_id], "best_train_acc", [0.3], 0.1, True)
    with store.read() as con:
        with pytest.raises(plots.NothingToPlot, match="nothing to plot for `sweep`"):
            plots.plot(con, "sweep", "only")
        with pytest.raises(DofbenchError, match="unknown plot kind 'nope'; allowed: phase"):
            plots.plot(con, "nope", "only")
    with pytest.raises(DofbenchError, match="no such suite"):
        plots.render(store, ["phase"], "missing", tmp_path)


def test_plot_cli_writes_every_kind(store, tmp_path):
    out = tmp_path / "figs"
    res = invoke("plot", "all", "--suite", SUITE, "--db", str(store.path), "--out", str(out), "--format", "png")
    assert res.exit_code == 0, res.output + res.stderr
    for kind in plots.KINDS:
        png = out / f"{SUITE}-{kind}.png"
        assert str(png) in res.output.split()
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not list(out.glob("*.svg"))
    res = invoke("plot", "dstar", "--db", str(store.path), "--out", str(out))  # every suite, png and svg
    assert res.exit_code == 0 and "<svg" in (out / f"{SUITE}-dstar.svg").read_text()[:2000]
    bad = invoke("plot", "sweep", "--db", str(tmp_path / "none.duckdb"))
    assert bad.exit_code == 1 and "no results store" in bad.stderr
    bad = invoke("plot", "pie", "--db", str(store.path))
    assert bad.exit_code != 0 and "pie" in bad.stderr
