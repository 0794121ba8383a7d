"""The methods × ε comparison (dofbench compare, the report's first table): the numbers are the
leaderboard's, the reading's ratios are the yardstick's d* over the best method's."""

from __future__ import annotations

import json

import pytest

from dofbench import Session


@pytest.fixture(scope="module")
def store(synth_store):
    return synth_store


def test_cells_are_the_leaderboards_d_star_interval_and_fraction(store, synth):
    comp = Session(db=store.path).compare("synth")
    (task,) = comp.tasks
    assert task.epsilons == synth.EPSILONS and task.D == synth.D and task.model == "mlp[hidden=[32]]"
    assert task.yardsticks == ["random-subspace"]
    assert set(task.methods) == {"random-subspace", "burn-in-subspace[steps=0]", "burn-in-subspace[steps=16]", "full"}
    lb = store.query("select label, epsilon, d_star, d_star_lo, d_star_hi, d_star_fraction from leaderboard "
                     "where suite = 'synth'")[1]
    for label, eps, d, lo, hi, frac in lb:
        c = task.cell(label, eps)
        assert (c["d_star"], c["d_star_lo"], c["d_star_hi"], c["d_star_fraction"]) == (d, lo, hi, frac)
    long = json.loads(comp.render("json"))
    assert len(long) == len(lb) and {r["method"] for r in long} == set(task.methods)


def test_the_reading_says_how_many_times_fewer_dimensions_than_the_yardstick(store, synth):
    comp = Session(db=store.path).compare("synth")
    (task,) = comp.tasks
    parts = []
    for eps in synth.EPSILONS:
        best = task.best(eps)
        bd = task.cell(best[0], eps)["d_star"]
        yd = task.cell("random-subspace", eps)["d_star"]
        parts.append((eps, best, bd, yd))
    assert task.reading.startswith("Against random-subspace: ")
    for eps, best, bd, yd in parts:
        if yd > bd:
            assert f"{' = '.join(best)} needs {yd / bd:.3g}× fewer dimensions at ε={eps:g} ({bd} vs {yd})" in task.reading
        else:
            assert f"no method needs fewer dimensions than random-subspace at ε={eps:g} ({yd})" in task.reading
    assert any(yd > bd for *_, bd, yd in parts)  # the synthetic burn-in does beat random subspaces


def test_the_reading_reads_epsilons_with_the_same_best_method_together_and_marks_bounds(tmp_path, synth):
    """Where the best d* is the smallest d run, the true threshold may be lower: ≤ in the cell, ≥
    in the ratio; where the yardstick reaches no d of the grid, the ratio is a lower bound too."""
    from dofbench.results.store import Store

    store = Store(tmp_path / "s.duckdb")
    results, ids, ys = [], [], set()
    acc = {("random-subspace", 8): 0.25, ("random-subspace", 64): 0.35, ("random-subspace", 512): 0.45,
           ("good", 8): 0.9, ("good", 64): 0.9, ("good", 512): 0.9}
    for (method, d), a in acc.items():
        for s in (0, 1, 2):
            r = synth.result(method, {}, d, s, a)
            results.append(r)
            ids.append(r.trial_id)
            if method == "random-subspace":
                ys.add(r.trial_id)
    store.write_results(results, "b")
    store.register_suite("b", "", {}, "t", ids, "best_train_acc", [0.2, 0.3, 0.5], 0.1, True, yardsticks=ys)
    (task,) = Session(db=store.path).compare("b").tasks
    assert task.reading == (
        "Against random-subspace: no method needs fewer dimensions than random-subspace at ε=0.2 (≤8); "
        "good needs ≥ 8× fewer dimensions at ε=0.3 (≤8 vs 64), ≥ 64× at ε=0.5 (≤8 vs >512).")
    text = Session(db=store.path).compare("b").render("table", width=100)
    assert "≤8 " in text and ">512" in text and "[" not in text.split("\n", 4)[-1]  # no interval computed: none shown


def test_rendered_for_a_terminal_it_fits_100_columns(store):
    comp = Session(db=store.path).compare("synth")
    text = comp.render("table", width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    lines = text.splitlines()
    assert lines[0] == "synth: mlp[hidden=[32]] / mnist1d · D = 5,000"
    assert "ε=0.3" in text and "0.32%" in text and "100%" in text and "16 [16,64]" in text  # d*/D under d*
    md = comp.render("markdown")
    assert "| method | ε=0.3 | ε=0.5 | ε=0.7 |" in md
    assert comp._repr_html_().count("<table class='compare'>") == 1


def test_a_suite_without_yardstick_names_the_best(tmp_path, synth):
    from dofbench.results.store import Store

    store = Store(tmp_path / "s.duckdb")
    results, ids = [], []
    for d in (4, 64):
        for s in (0, 1):
            r = synth.result("other", {}, d, s, synth.acc("x", d, s))
            results.append(r)
            ids.append(r.trial_id)
    store.write_results(results, "solo")
    store.register_suite("solo", "", {}, "t", ids, "best_train_acc", [0.3, 0.99], 0.1, True)
    (task,) = Session(db=store.path).compare("solo").tasks
    assert task.reading == "other needs the fewest dimensions at ε=0.3 (64); no method reaches ε=0.99 with d ≤ 64."


def test_an_unknown_suite_is_one_line(store, invoke):
    res = invoke("compare", "--suite", "nope", "--db", str(store.path))
    assert res.exit_code == 1 and res.stderr.strip() == (
        f"Error: --suite 'nope': no such suite in {store.path}; stored: synth")


def test_dofbench_compare_prints_the_table_and_the_numbers(store, invoke):
    res = invoke("compare", "--suite", "synth", "--db", str(store.path), env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.stderr
    lines = res.output.splitlines()
    assert lines[0] == "synth: mlp[hidden=[32]] / mnist1d · D = 5,000" and max(len(x) for x in lines) <= 100
    assert any(x.startswith("burn-in-subspace[steps=16]  16 [16,64]") for x in lines)
    assert "Against random-subspace: burn-in-subspace[steps=16] needs 4× fewer dimensions at ε=0.3" in res.output
    rows = json.loads(invoke("compare", "--db", str(store.path), "--format", "json").output)
    assert {(r["method"], r["epsilon"]) for r in rows} == {(m, e) for m in ("random-subspace", "full",
            "burn-in-subspace[steps=0]", "burn-in-subspace[steps=16]") for e in (0.3, 0.5, 0.7)}


def _store(tmp_path, synth, accs: dict, failed=()):
    """A suite 'c' of (method, d) → accuracy over seeds 0–2, run as a run records it; ``failed``:
    (method, d, seed) stored as failed instead."""
    from dofbench.results import intervals
    from dofbench.results.store import Store

    store = Store(tmp_path / "c.duckdb")
    results, ids, ys = [], [], set()
    for (method, d), a in accs.items():
        for s in (0, 1, 2):
            bad = (method, d, s) in failed
            r = synth.result(method, {}, d, s, None if bad else a, status="failed" if bad else "ok")
            results.append(r)
            ids.append(r.trial_id)
            if method == "random-subspace":
                ys.add(r.trial_id)
    store.write_results(results, "c")
    store.register_suite("c", "", {}, "t", ids, "best_train_acc", [0.5], 0.1, True, yardsticks=ys)
    store.record_statistics("c", "grid", 0.95, seeds=3)
    intervals.refresh(store, "c")
    return store


def test_a_grid_with_missing_seeds_is_marked_and_not_read_as_unreached(tmp_path, synth):
    store = _store(tmp_path, synth, {("random-subspace", 8): 0.2, ("random-subspace", 64): 0.9,
                                     ("good", 8): 0.9, ("good", 64): 0.9}, failed={("random-subspace", 64, 1)})
    comp = Session(db=store.path).compare("c")
    (task,) = comp.tasks
    assert task.cell("random-subspace", 0.5)["d_star"] is None  # d = 64 lacks a seed: not eligible
    assert "random-subspace  ?" in comp.render("table", width=100)
    assert task.reading == ("Against random-subspace: good needs the fewest dimensions at ε=0.5 (≤8), where "
                            "random-subspace's seeds are not all in.")


def test_a_method_beyond_the_yardsticks_grid_gets_no_ratio(tmp_path, synth):
    store = _store(tmp_path, synth, {("random-subspace", 8): 0.2, ("random-subspace", 64): 0.3,
                                     ("full", 1000): 0.95})
    (task,) = Session(db=store.path).compare("c").tasks
    assert task.reading == "Against random-subspace: full reaches ε=0.5 (1000; random-subspace >64), beyond the grid random-subspace ran."


def test_an_epsilon_no_method_reaches_yet_is_not_read_as_unreached_on_the_grid(tmp_path, synth):
    store = _store(tmp_path, synth, {("random-subspace", 8): 0.2, ("random-subspace", 64): 0.3},
                   failed={("random-subspace", 64, 2)})
    (task,) = Session(db=store.path).compare("c").tasks
    assert task.reading == ("Against random-subspace: no method reaches ε=0.5 on the seeds stored so far "
                            "(some d lack seeds: failed or not run).")
    complete = _store(tmp_path / "all", synth, {("random-subspace", 8): 0.2, ("random-subspace", 64): 0.3})
    (task,) = Session(db=complete.path).compare("c").tasks
    assert task.reading == "Against random-subspace: no method reaches ε=0.5 with d ≤ 64."
