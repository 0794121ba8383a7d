"""The methods × ε comparison (dofbench compare, the report's first table): the numbers are the
leaderboard's, the reading's ratios are the yardstick's d* over the best method's."""

from __future__ import annotations

import json

import pytest

from dofbench import Session


@pytest.fixture(scope="module")
def store(tmp_path_factory, synth):
    return synth.make_store(tmp_path_factory.mktemp("compare") / "synth.duckdb")


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
    assert task.reading.startswith("Against random-subspace — ")
    for eps, best, bd, yd in parts:
        if yd > bd:
            assert f"ε={eps:g}: {' = '.join(best)} needs {yd / bd:.3g}× fewer ({bd} vs {yd})" in task.reading
        else:
            assert f"ε={eps:g}: no method needs fewer than random-subspace ({yd})" in task.reading
    assert any(yd > bd for *_, bd, yd in parts)  # the synthetic burn-in does beat random subspaces


def test_rendered_for_a_terminal_it_fits_100_columns(store):
    comp = Session(db=store.path).compare("synth")
    text = comp.render("table", width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    lines = text.splitlines()
    assert lines[0] == "synth: mlp[hidden=[32]] / mnist1d · D = 5,000"
    assert "ε=0.3" in text and "0.32%" in text and "100%" in text  # d*/D under d*
    md = comp.render("markdown")
    assert "| method | ε=0.3 | ε=0.5 | ε=0.7 |" in md
    assert comp._repr_html_().count("<table class='compare'>") == 1


def test_a_suite_without_yardstick_names_the_best(tmp_path, synth):
    from dofbench.results.store import Store

    store = Store(tmp_path / "s.duckdb")
    ids = []
    for d in (4, 64):
        for s in (0, 1):
            r = synth.result("other", {}, d, s, synth.acc("x", d, s))
            store.write_result(r, "solo")
            ids.append(r.trial_id)
    store.register_suite("solo", "", {}, "t", ids, "best_train_acc", [0.3, 0.99], 0.1, True)
    (task,) = Session(db=store.path).compare("solo").tasks
    assert task.reading == "Best method — ε=0.3: best other (64); ε=0.99: no method reaches it with d ≤ 64."


def test_an_unknown_suite_is_one_line(store, invoke):
    res = invoke("compare", "--suite", "nope", "--db", str(store.path))
    assert res.exit_code == 1 and res.stderr.strip() == (
        f"Error: --suite 'nope': no such suite in {store.path}; stored: synth")
