"""The adaptive search for d*: the decision rule, the bisection on a synthetic landscape, and an
end-to-end run on a quadratic well that reuses the grid's trials."""

import numpy as np
import pytest

from dofbench.run.adaptive import ABOVE, BELOW, GroupSearch, PointDecider
from dofbench.cli.session import Session
from dofbench.config.schemas import ResolvedComponent, TrainConfig, TrialSpec


def test_point_decider_curtails_and_predicts():
    dec = PointDecider(n_max=5, delta=0.1, confidence=0.95, higher_is_better=True)
    assert dec.required == 5
    assert dec.decide([0.9] * 5, 0.5, None) == ABOVE            # all five succeed
    assert dec.decide([0.9, 0.1], 0.5, None) == BELOW           # one failure: 5/5 impossible
    assert dec.decide([0.9, 0.91], 0.5, None) == 0              # spread unknown: undecided
    assert dec.decide([0.9, 0.91], 0.5, (1e-4, 10)) == ABOVE    # far above ε relative to the spread
    assert dec.decide([0.52, 0.53], 0.5, (1e-2, 10)) == 0       # close to ε: more seeds needed
    loss = PointDecider(n_max=4, delta=0.1, confidence=0.95, higher_is_better=False)
    assert loss.decide([1e-5, 2e-5], 1e-3, (0.05, 8)) == ABOVE  # losses judged on a log scale
    assert loss.decide([None], 1e-3, None) == BELOW              # diverged: a failure


def _spec(d, seed):
    comp = ResolvedComponent(name="x", params={})
    return TrialSpec(model=comp, dataset=comp, method=comp, d=d, seed=seed, train=TrainConfig(),
                     identity={"model": {}, "dataset": {}, "method": {}})


def _bisect(values, dims, seeds, epsilons, confidence=0.95):
    """Drive a GroupSearch with a table of metric values instead of training."""
    dec = PointDecider(len(seeds), 0.1, confidence, True)
    trials = {(d, s): _spec(d, s) for d in dims for s in seeds}
    g = GroupSearch(("k",), dims, seeds, epsilons, dec, trials)
    asked = set()
    while True:
        todo = g.requests()
        if not todo:
            break
        for t in todo:
            asked.add((t.d, t.seed))
            g.values[(t.d, t.seed)] = values[(t.d, t.seed)]
    return {e: g.d_star(e) for e in epsilons}, asked


def _grid_d_star(values, dims, seeds, eps, delta=0.1):
    for d in dims:
        k = sum(values[(d, s)] >= eps for s in seeds)
        if k >= (1 - delta) * len(seeds) - 1e-9:
            return d
    return None


def test_bisection_reproduces_the_grid_with_far_fewer_trials():
    rng = np.random.default_rng(0)
    dims = [2 ** i for i in range(3, 13)]          # 10 log-spaced points
    seeds = list(range(10))
    epsilons = [0.3, 0.5, 0.7]
    agree = 0
    total = 0
    for rep in range(5):
        center = rng.uniform(5, 10)
        values = {(d, s): 1 / (1 + np.exp(-(np.log2(d) - center))) + 0.01 * rng.standard_normal()
                  for d in dims for s in seeds}
        got, asked = _bisect(values, dims, seeds, epsilons)
        for e in epsilons:
            want = _grid_d_star(values, dims, seeds, e)
            total += 1
            agree += got[e] == want
            assert got[e] is None and want is None or abs(dims.index(got[e]) - dims.index(want)) <= 1
        assert len(asked) <= 0.4 * len(dims) * len(seeds)
    assert agree >= total - 1
    # no transition on the grid: d* is None, found cheaply
    flat = {(d, s): 0.1 for d in dims for s in seeds}
    got, asked = _bisect(flat, dims, seeds, [0.5])
    assert got == {0.5: None} and len(asked) < 10


WELL = """
[suites.wellgrid]
models   = [{ name = "quadratic-point", params = { R = 1.0 } }]
datasets = [{ name = "quadratic-well", params = { dim = 120, k = 6, lambda_rest = 1e-4 } }]
methods  = ["random-subspace"]
dims     = [2, 4, 8, 16, 32, 64]
seeds    = 3
train    = { epochs = 120, batch_size = 1, eval_every_epochs = 10 }
[suites.wellgrid.threshold]
metric   = "best_train_loss"
epsilons = [0.002]
"""


def test_adaptive_suite_end_to_end_reuses_the_grid(tmp_path):
    cfg = tmp_path / "w.toml"
    cfg.write_text(WELL + WELL.replace("wellgrid", "welladapt").replace(
        "[suites.welladapt.threshold]", 'search = { strategy = "adaptive" }\n[suites.welladapt.threshold]'))
    s = Session(db=tmp_path / "r.duckdb", config=cfg)
    [summary] = s.run(["welladapt"], executor="local")
    ran = summary.ran
    assert 0 < ran < 18
    lb = s.query("select d_star, estimator, n_seeds from leaderboard where suite = 'welladapt'").records()[0]
    assert lb["estimator"] == "adaptive"
    s.run(["wellgrid"], executor="local")                        # the grid reuses the adaptive trials
    grid = s.query("select d_star, d_star_lo from leaderboard where suite = 'wellgrid'").records()[0]
    dims = [2, 4, 8, 16, 32, 64]
    assert abs(dims.index(lb["d_star"]) - dims.index(grid["d_star"])) <= 1
    n_grid = s.query("select count(*) as n from suite_trials where suite = 'wellgrid'").records()[0]["n"]
    assert n_grid == 18
    [again] = s.run(["welladapt"], executor="local")              # everything stored: nothing runs
    assert again.ran == 0 and again.skipped == ran
    rows = s.query("select trials, steps from searches where suite = 'welladapt'").records()
    assert rows[0]["trials"] == ran and rows[0]["steps"] == 120 * ran


def test_search_setting_is_validated(tmp_path):
    from dofbench.errors import DofbenchError

    cfg = tmp_path / "bad.toml"
    cfg.write_text(WELL.replace("[suites.wellgrid.threshold]",
                                'search = { strategy = "smart" }\n[suites.wellgrid.threshold]'))
    with pytest.raises(DofbenchError, match="search.strategy"):
        Session(config=cfg).resolve(["wellgrid"])


def test_budgets_stop_an_adaptive_search_and_a_rerun_finishes_it(tmp_path):
    """The one scheduler enforces --max-trials and --time-budget for adaptive suites too: a
    stopped search writes no d*, the rerun reuses what was stored and decides what an unstopped
    search decides."""
    cfg = tmp_path / "w.toml"
    cfg.write_text(WELL.replace("wellgrid", "welladapt").replace(
        "[suites.welladapt.threshold]", 'search = { strategy = "adaptive" }\n[suites.welladapt.threshold]'))
    whole = Session(db=tmp_path / "whole.duckdb", config=cfg)
    [ref] = whole.run(["welladapt"], executor="local")
    s = Session(db=tmp_path / "r.duckdb", config=cfg)
    [first] = s.run(["welladapt"], executor="local", max_trials=2)
    assert (first.ran, first.budget) == (2, "trial budget 2")
    assert s.query("select count(*) as n from searches").records()[0]["n"] == 0
    [timed] = s.run(["welladapt"], executor="local", time_budget=1e-9)
    assert timed.ran == 0 and timed.budget.startswith("time budget")
    [rest] = s.run(["welladapt"], executor="local")
    assert rest.budget is None and rest.skipped >= 2 and rest.ran + rest.skipped == ref.ran
    q = "select epsilon, d_star, estimator from leaderboard where suite = 'welladapt'"
    assert s.query(q).rows == whole.query(q).rows
