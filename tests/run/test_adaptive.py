"""The adaptive search for d*: the verdict at one d (nested inference, curtailment, the
Beta–Binomial rule, failed seeds), the bisection against the grid on synthetic tables (exact for
nested subspaces, bimodal seeds included), and end-to-end runs on a quadratic well that reuse the
grid's trials."""

import math

import numpy as np
import pytest

from dofbench.run.adaptive import ABOVE, BELOW, INELIGIBLE, GroupSearch, beta_binomial_sf
from dofbench.cli.session import Session
from dofbench.config.schemas import ResolvedComponent, TrainConfig, TrialSpec


def _spec(d, seed):
    comp = ResolvedComponent(name="x", params={})
    return TrialSpec(model=comp, dataset=comp, method=comp, d=d, seed=seed, train=TrainConfig(),
                     identity={"model": {}, "dataset": {}, "method": {}})


def _search(dims, seeds, epsilons, nested, **kw):
    trials = {(d, s): _spec(d, s) for d in dims for s in seeds}
    return GroupSearch(("k",), dims, seeds, epsilons, 0.1, True, trials, nested=nested, **kw)


def test_verdicts_at_one_d():
    g = _search([10, 20, 40], list(range(5)), [0.5], nested=True)
    g.values[(20, 0)] = ("ok", 0.9)
    g.values[(40, 1)] = ("ok", 0.2)                  # fails at 40: fails at 20 too (nested)
    v = g.verdict(20, 0.5)
    assert (v.decision, v.successes, v.usable, v.to_run) == (BELOW, 1, 2, [2, 3, 4])  # 5/5 needed
    g.values[(10, 2)] = ("ok", 0.95)                 # succeeds at 10: succeeds at 20
    assert g.verdict(20, 0.5).successes == 2
    g.values[(20, 3)] = ("diverged", 0.99)           # a diverged seed is a usable failure
    assert g.outcome(20, 3, 0.5) == "fail"
    # failed trials are no evidence: their seed does not count at that d
    h = _search([10, 20], list(range(5)), [0.5], nested=True, min_seeds=4)
    for s in range(4):
        h.values[(20, s)] = ("ok", 0.9)
    h.failed.add((20, 4))
    assert h.verdict(20, 0.5).decision == ABOVE     # 4 of 4 usable, and 4 ≥ min_seeds
    h.failed.add((20, 3))
    del h.values[(20, 3)]
    assert h.verdict(20, 0.5).decision == INELIGIBLE
    # independent subspaces: no inference; the Beta–Binomial predictive decides before all seeds ran
    i = _search([10, 20], list(range(10)), [0.5], nested=False)
    for s in range(4):
        i.values[(20, s)] = ("ok", 0.1)
    assert i.verdict(20, 0.5).decision == BELOW      # 4 failures: 9 of 10 impossible (curtailment)
    j = _search([10, 20], list(range(10)), [0.5], nested=False)
    j.values[(10, 0)] = ("ok", 0.9)
    assert j.outcome(20, 0, 0.5) == "unknown" and j.verdict(20, 0.5).decision == 0
    assert beta_binomial_sf(9, 9, 1, 0) < 0.5 and beta_binomial_sf(0, 3, 0, 0) == 1.0


def _run(g, table):
    """Drive a GroupSearch with a table of (status, metric) instead of training; the trials asked."""
    asked = set()
    while True:
        todo = g.requests()
        if not todo:
            return asked
        for t in todo:
            asked.add((t.d, t.seed))
            g.values[(t.d, t.seed)] = table(t.d, t.seed)


def _grid_d_star(table, dims, seeds, eps, delta=0.1):
    for d in dims:
        k = sum(table(d, s)[1] >= eps and table(d, s)[0] == "ok" for s in seeds)
        if k >= math.ceil((1 - delta) * len(seeds) - 1e-9):
            return d
    return None


@pytest.mark.parametrize("kind", ["log-normal", "bimodal", "dip"])
def test_nested_bisection_reproduces_the_grid_exactly(kind):
    """Per-seed monotone success (nested subspaces): the search's d* is the grid's in every
    repetition — with seeds stuck at chance on the whole grid (bimodal), and with P_s far below
    1 − δ at the first probe (dip) — from a fraction of the grid's trials, without a model."""
    rng = np.random.default_rng({"log-normal": 0, "bimodal": 1, "dip": 2}[kind])
    dims = [2 ** i for i in range(3, 13)]
    seeds = list(range(10))
    epsilons = [0.3, 0.5, 0.7]
    asked_total = 0
    for rep in range(40):
        # each seed has a first-success dimension per ε (larger for stricter ε); the metric is then a
        # step function of d per seed: monotone success
        centre = rng.uniform(4, 10)
        base = {s: centre + rng.normal(0, 0.7) for s in seeds}
        if kind == "bimodal":
            for s in rng.choice(seeds, size=rng.integers(1, 4), replace=False):
                base[s] = 99.0                        # stuck at chance everywhere
        if kind == "dip":
            for s in seeds[:6]:
                base[s] = base[s] + 4                 # most seeds need a much larger d
        def table(d, s):
            x = math.log2(d) - base[s]
            return ("ok", 0.2 if x < 0 else (0.6 if x < 1 else 0.9))
        g = _search(dims, seeds, epsilons, nested=True)
        asked = _run(g, table)
        asked_total += len(asked)
        for e in epsilons:
            assert g.d_star(e) == _grid_d_star(table, dims, seeds, e), (rep, e)
    assert asked_total < 0.6 * 40 * len(dims) * len(seeds)


def test_independent_bisection_mostly_agrees_with_the_grid():
    """Independent subspaces: per-(d, seed) outcomes are independent draws around P_s(d); the
    Beta–Binomial rule decides early and can differ from the grid, rarely."""
    rng = np.random.default_rng(3)
    dims = [2 ** i for i in range(3, 13)]
    seeds = list(range(10))
    agree = total = 0
    for rep in range(30):
        centre = rng.uniform(5, 10)
        draws = {(d, s): rng.random() for d in dims for s in seeds}
        def table(d, s):
            p = 1 / (1 + math.exp(-3 * (math.log2(d) - centre)))
            return ("ok", 0.9 if draws[(d, s)] < p else 0.1)
        g = _search(dims, seeds, [0.5], nested=False)
        _run(g, table)
        want = _grid_d_star(table, dims, seeds, 0.5)
        total += 1
        agree += g.d_star(0.5) == want
        assert want is None or g.d_star(0.5) is None or abs(dims.index(g.d_star(0.5)) - dims.index(want)) <= 2
    assert agree >= 0.8 * total


def test_refine_finds_every_seeds_first_success_dimension():
    dims = [8, 16, 32, 64]
    seeds = [0, 1, 2]
    true = {0: 11, 1: 30, 2: 200}                    # seed 2 never succeeds on the grid
    g = _search(dims, seeds, [0.5], nested=True, refine=True)
    asked = _run(g, lambda d, s: ("ok", 0.9 if d >= true[s] else 0.1))
    assert g.bracket(0, 0.5) == (10, 11) and g.bracket(1, 0.5) == (29, 30)
    assert g.bracket(2, 0.5) == (64, None)          # censored at the grid's largest d
    assert any(d not in dims for d, _ in asked)


WELL = """
[suites.wellgrid]
models   = [{ name = "quadratic-point", params = { R = 1.0 } }]
datasets = [{ name = "quadratic-well", params = { dim = 120, k = 6, lambda_rest = 1e-4 } }]
methods  = [{ name = "random-subspace", params = { nested = true } }]
dims     = [2, 4, 8, 16, 32, 64]
seeds    = 3
train    = { epochs = 120, batch_size = 1, eval_every_epochs = 10 }
[suites.wellgrid.threshold]
metric   = "best_train_loss"
epsilons = [0.002]
"""


@pytest.mark.slow
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
    monotone = s.query("select bool_and(monotone) as m from first_success where suite = 'wellgrid'").records()[0]
    assert monotone["m"] and lb["d_star"] == grid["d_star"]      # nested, monotone seeds: exactly the grid's
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_refined_first_success_dimensions_measure_the_angular_dimension(tmp_path, invoke):
    """Nested subspaces with search.refine on a quadratic well: every seed's first-success dimension
    is one integer d, the stored empirical w² = D + ½ − mean d_s sits inside the quadratic theory's
    interval for that many seeds, and the adaptive d* is the grid's."""
    import json

    cfg = tmp_path / "w.toml"
    cfg.write_text(WELL.replace("wellgrid", "wellref").replace("seeds    = 3", "seeds    = 4").replace(
        "[suites.wellref.threshold]", 'search = { strategy = "adaptive", refine = true }\n[suites.wellref.threshold]'))
    s = Session(db=tmp_path / "r.duckdb", config=cfg)
    [summary] = s.run(["wellref"], executor="local")
    fs = s.query("select seed, d_below, d_first, exact from first_success where suite = 'wellref'").records()
    assert len(fs) == 4 and all(r["exact"] for r in fs)
    assert invoke("theory", "suite", "wellref", "--config", str(cfg), "--db", str(tmp_path / "r.duckdb"),
                  "--samples", "200").exit_code == 0
    res = invoke("theory", "compare", "wellref", "--db", str(tmp_path / "r.duckdb"), "--format", "json")
    [row] = json.loads(res.output)
    mean = sum(r["d_first"] for r in fs) / 4
    assert row["w2"] == pytest.approx(120 + 0.5 - mean, abs=0.1) and row["exact"] == 4
    assert row["source"] == "quadratic-theory" and row["within"], row
