"""Every plot kind drawn from a small stored suite: the data drawn equals what the store's views say,
and the files are real PNG/SVG images."""

from __future__ import annotations

import shutil
import statistics

import pytest

from dofbench.report import plots
from dofbench.errors import DofbenchError
from dofbench.results.store import Store


@pytest.fixture(scope="module")
def store(synth_store):
    return synth_store


def _draw(store, kind, out=None):
    """Draw one kind of the synthetic suite (no files unless ``out``); the CLI test checks the files."""
    with store.read() as con:
        return plots.plot(con, kind, "synth", out)


def test_phase_grid_equals_the_success_view(store, tmp_path, synth):
    res = _draw(store, "phase")
    # one panel per method with a grid of d (not `full`, whose only d is D)
    assert [p["method"] for p in res.panels] == ["burn-in-subspace[steps=0]", "burn-in-subspace[steps=16]",
                                                 "random-subspace"]
    panel = next(p for p in res.panels if p["method"] == "random-subspace")
    assert panel["ds"] == synth.DIMS and panel["epsilons"] == synth.EPSILONS and panel["D"] == synth.D
    cols, rows = store.query("select epsilon, d, p_success from success where suite = ? and method = ?",
                             [synth.SUITE, "random-subspace"])
    view = {(e, d): p for e, d, p in rows}
    assert len(view) == len(synth.DIMS) * len(synth.EPSILONS)
    for i, e in enumerate(synth.EPSILONS):
        for j, d in enumerate(synth.DIMS):
            assert panel["p_success"][i][j] == view[(e, d)]
    # the grid is not trivial: at the loosest ε, P_s is 0 at d=4 and 1 at d=64; at d=256 the diverged
    # seed counts against P_s (3 of 4) and the failed one not at all
    assert panel["p_success"][0][0] == 0.0 and panel["p_success"][0][2] == 1.0
    assert panel["p_success"][0][-1] == 0.75
    lb = dict(store.query("select epsilon, d_star from leaderboard where suite=? and method='random-subspace'",
                          [synth.SUITE])[1])
    assert panel["d_star"] == lb and any(v is not None for v in lb.values())
    assert panel["predicted"] == {}


def test_phase_overlays_the_predicted_curve(store, tmp_path, synth):
    shutil.copy(store.path, tmp_path / "pred.duckdb")
    store = Store(tmp_path / "pred.duckdb")
    with store.write() as con:
        con.executemany("INSERT INTO predictions (suite, model, dataset, method, metric, epsilon, d_star_pred, "
                        "d_star_pred_lo, d_star_pred_hi, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [[synth.SUITE, "mlp", "mnist1d", "random-subspace", "best_train_acc", e, 20.0 * (1 + i),
                          10.0 * (1 + i), 40.0 * (1 + i), "test"] for i, e in enumerate(synth.EPSILONS)])
    res = _draw(store, "phase")
    panel = next(p for p in res.panels if p["method"] == "random-subspace")
    assert panel["predicted"] == {e: (20.0 * (1 + i), 10.0 * (1 + i), 40.0 * (1 + i)) for i, e in enumerate(synth.EPSILONS)}
    assert next(p for p in res.panels if p["method"] == "burn-in-subspace[steps=16]")["predicted"] == {}


def test_ps_draws_every_method_of_a_task_on_one_axis_per_epsilon(store, tmp_path, synth):
    res = _draw(store, "ps")
    assert [p["epsilon"] for p in res.panels] == synth.EPSILONS  # one task: one panel per ε
    for panel in res.panels:
        assert set(panel["lines"]) == {"burn-in-subspace[steps=0]", "burn-in-subspace[steps=16]", "full",
                                       "random-subspace"}
        rows = store.query("select label, d, p_success from success where suite=? and epsilon=? order by label, d",
                           [synth.SUITE, panel["epsilon"]])[1]
        for label, pts in panel["lines"].items():
            assert pts == [(d, p) for lab, d, p in rows if lab == label]
        assert panel["title"] == f"mlp[hidden=[32]] / mnist1d · D=5,000 · ε={panel['epsilon']:g}"


def test_accuracy_mean_and_spread_over_seeds(store, tmp_path, synth):
    res = _draw(store, "accuracy")
    (panel,) = res.panels
    assert panel["D"] == synth.D and panel["metric"] == "best_train_acc"
    pts = {d: (m, s, n) for d, m, s, n in panel["lines"]["random-subspace"]}
    for d in synth.DIMS:
        accs = [synth.acc("random-subspace", d, s) for s in synth.SEEDS]
        m, s, n = pts[d]
        assert n == len(synth.SEEDS)  # the diverged and failed trials have no value
        assert m == pytest.approx(statistics.mean(accs)) and s == pytest.approx(statistics.stdev(accs))
    assert [x[0] for x in panel["lines"]["full"]] == [synth.D]


def test_dstar_per_method_against_epsilon(store, tmp_path, synth):
    res = _draw(store, "dstar")
    (panel,) = res.panels
    rows = store.query("select label, epsilon, d_star from leaderboard where suite=? order by label, epsilon", [synth.SUITE])[1]
    expected: dict = {}
    for label, e, d in rows:
        expected.setdefault(label, []).append((e, d))
    assert panel["lines"] == expected
    # stricter ε needs more dimensions (or none on the grid suffices)
    rs = [d for _, d in panel["lines"]["random-subspace"]]
    assert rs[0] is not None and all(b is None or (a is not None and b >= a) for a, b in zip(rs, rs[1:]))


def test_sweep_draws_dstar_against_the_parameter_a_method_varies(store, tmp_path, synth):
    res = _draw(store, "sweep")
    (panel,) = res.panels  # random-subspace and full have one configuration each: nothing swept
    assert (panel["method"], panel["param"]) == ("burn-in-subspace", "steps")
    assert set(panel["lines"]) == {f"ε={e:g}" for e in synth.EPSILONS}
    for e in synth.EPSILONS:
        expected = [(t, store.query("select d_star from leaderboard where suite=? and label=? and epsilon=?",
                                    [synth.SUITE, f"burn-in-subspace[steps={t}]", e])[1][0][0]) for t in synth.BURNIN_STEPS]
        assert panel["lines"][f"ε={e:g}"] == expected
    loose = [d for _, d in panel["lines"]["ε=0.3"]]
    assert loose[-1] < loose[0]  # burn-in lowers d* in the synthetic data


def test_curves_are_seed_means_of_evals(store, tmp_path, synth):
    res = _draw(store, "curves")
    panel = next(p for p in res.panels if p["method"] == "random-subspace")
    # the suite's metric (best_train_acc: acc) on both splits
    assert panel["metric"] == "acc" and set(panel["lines"]) == {"train", "test"}
    for split in ("train", "test"):
        assert sorted(panel["lines"][split]) == synth.DIMS
        rows = store.query("select e.step, avg(e.value) from evals e join trials t using (trial_id) "
                           "where t.label='random-subspace' and t.d=64 and e.split=? and e.metric='acc' "
                           "group by e.step order by e.step", [split])[1]
        assert panel["lines"][split][64] == [(s, pytest.approx(v)) for s, v in rows]
        assert [s for s, _ in panel["lines"][split][64]] == [0, 10, 20]
    # a few d: discrete colours named in the legend (no colour bar), train solid and test dashed
    ax = res.figure.axes[0]
    (legend,) = res.figure.legends  # one legend for the figure, below the panels
    # the same colour for a d in every panel (the full baseline adds d = D)
    assert [t.get_text() for t in legend.get_texts()] == ["d=4", "d=16", "d=64", "d=256", "d=5000", "train", "test"]
    assert len(res.figure.axes) == len(res.panels)  # no colour bar axes
    styles = {line.get_linestyle() for line in ax.get_lines()}
    assert styles == {"-", "--"}


def test_nothing_to_plot_and_bad_kind(tmp_path, synth):
    store = Store(tmp_path / "s.duckdb")
    r = synth.result("random-subspace", {}, 4, 0, 0.5)
    store.write_result(r, "only")
    store.register_suite("only", "", {}, "t", [r.trial_id], "best_train_acc", [0.3], 0.1, True)
    with store.read() as con:
        with pytest.raises(plots.NothingToPlot, match="nothing to plot for `sweep`"):
            plots.plot(con, "sweep", "only")
        with pytest.raises(DofbenchError, match="unknown plot kind 'nope'; allowed: phase"):
            plots.plot(con, "nope", "only")
    with pytest.raises(DofbenchError, match="no such suite"):
        plots.render(store, ["phase"], "missing", tmp_path)


def test_plot_cli_writes_every_kind(store, tmp_path, invoke, synth):
    out = tmp_path / "figs"
    res = invoke("plot", "all", "--suite", synth.SUITE, "--db", str(store.path), "--out", str(out), "--format", "png")
    assert res.exit_code == 0, res.output + res.stderr
    for kind in plots.PLOT_KINDS:
        png = out / f"{synth.SUITE}-{kind}.png"
        assert str(png) in res.output.split()
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not list(out.glob("*.svg"))
    res = invoke("plot", "dstar", "--db", str(store.path), "--out", str(out))  # every suite, png and svg
    assert res.exit_code == 0 and "<svg" in (out / f"{synth.SUITE}-dstar.svg").read_text()[:2000]
    bad = invoke("plot", "sweep", "--db", str(tmp_path / "none.duckdb"))
    assert bad.exit_code == 1 and "no results store" in bad.stderr
    bad = invoke("plot", "pie", "--db", str(store.path))
    assert bad.exit_code != 0 and "pie" in bad.stderr


def _tick_boxes(fig):
    """The window extents of every tick label drawn (non-empty, inside the axis' limits), per axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for axis, lims in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lims), max(lims)
            boxes = []
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                label = tick.label1
                if label.get_visible() and label.get_text() and lo <= tick.get_loc() <= hi:
                    boxes.append((label.get_text(), label.get_window_extent(renderer)))
            out.append(boxes)
    return out


@pytest.mark.parametrize("kind", ["phase", "ps", "accuracy", "dstar", "sweep", "curves"])
def test_no_tick_labels_overlap_and_log_axes_label_the_grid(store, kind, synth):
    res = _draw(store, kind)
    for boxes in _tick_boxes(res.figure):
        for i, (ta, a) in enumerate(boxes):
            for tb, b in boxes[i + 1:]:
                assert not a.overlaps(b), (kind, ta, tb)
    if kind in ("ps", "accuracy", "phase"):
        ax = res.figure.axes[0]
        labels = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
        assert set(labels) >= {"4", "16", "64", "256"} and all("^" not in t for t in labels)
        assert not [t.get_text() for t in ax.xaxis.get_ticklabels(minor=True) if t.get_text()]


def test_titles_name_model_and_dataset_params_and_two_configurations_stay_apart(tmp_path, synth):
    store = Store(tmp_path / "two.duckdb")
    rs = [synth.result("random-subspace", {}, d, s, synth.acc("random-subspace", d, s), model_params={"hidden": hidden})
          for hidden in ([32], [64]) for d in (4, 64) for s in (0, 1)]
    store.write_results(rs, "two")
    ids = [r.trial_id for r in rs]
    store.register_suite("two", "", {}, "t", ids, "best_train_acc", [0.3], 0.1, True)
    with store.read() as con:
        titles = [p["title"] for p in plots.plot(con, "accuracy", "two").panels]
    assert sorted(titles) == ["mlp[hidden=[32]] / mnist1d · D=5,000", "mlp[hidden=[64]] / mnist1d · D=5,000"]
    models = store.query("select distinct model from (select * from leaderboard) order by 1")[1]
    assert models == [("mlp",)]
    from dofbench import Session

    lb = Session(db=store.path).leaderboard("two")
    assert sorted(set(lb.column("model"))) == ["mlp[hidden=[32]]", "mlp[hidden=[64]]"]


def test_a_plot_holds_its_figure_shows_inline_and_saves(store, tmp_path):
    from dofbench import Session

    s = Session(db=store.path)
    p = s.plot("dstar", suite="synth")  # one kind: one Plot, no files
    assert p.paths == [] and p.figure is not None
    assert p._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert repr(p).startswith("<Plot dstar of 'synth'") and "panels" in repr(p) and "(0.3" not in repr(p)
    assert p.save(tmp_path / "x.svg").read_text()[:200].lstrip().startswith("<?xml")
    many = s.plot(["ps", "accuracy"], suite="synth")
    assert [q.kind for q in many] == ["ps", "accuracy"] and many._repr_html_().count("<img") == 2


def test_no_tick_labels_overlap_on_a_narrow_log_range(tmp_path, synth):
    """Less than a decade of d: matplotlib's own log axis labels minor ticks (3×10², 4×10²) on top
    of each other; the grid's d as plain labels do not overlap."""
    store = Store(tmp_path / "narrow.duckdb")
    rs = [synth.result("random-subspace", {}, d, s, synth.acc("random-subspace", d // 5, s))
          for d in (100, 150, 200, 300, 400, 600, 800) for s in (0, 1)]
    store.write_results(rs, "narrow")
    ids = [r.trial_id for r in rs]
    store.register_suite("narrow", "", {}, "t", ids, "best_train_acc", [0.3, 0.5], 0.1, True)
    with store.read() as con:
        for kind in ("phase", "ps", "accuracy", "dstar"):
            res = plots.plot(con, kind, "narrow")
            for boxes in _tick_boxes(res.figure):
                for i, (ta, a) in enumerate(boxes):
                    assert not any(a.overlaps(b) for _, b in boxes[i + 1:]), (kind, ta)
            if kind != "dstar":
                labels = [t.get_text() for t in res.figure.axes[0].xaxis.get_ticklabels() if t.get_text()]
                assert labels[:7] == ["100", "150", "200", "300", "400", "600", "800"], labels


@pytest.mark.parametrize("kind", ["ps", "accuracy", "dstar", "sweep"])
def test_coinciding_lines_all_show(store, kind):
    """Each later method of an axis is drawn thinner with smaller markers, so a method whose line
    lies on another's (both at P_s = 1, say) still shows."""
    with store.read() as con:
        fig = plots.plot(con, kind, "synth").figure
    checked = 0
    for ax in fig.axes:  # the panels (an unused slot of the grid has no lines)
        lines = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and not ln.get_label().startswith("_")]
        widths = [ln.get_linewidth() for ln in lines]
        sizes = [ln.get_markersize() for ln in lines]
        assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
        checked += len(lines) >= 2
    assert checked
