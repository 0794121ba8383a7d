"""`dofbench report SUITE --out DIR`: one self-contained HTML page and a Markdown file with the suite's
settings, leaderboard, references comparison, plots and environment."""

from __future__ import annotations

import base64
import re

import pytest

from dofbench import Session
from dofbench.results import references
from dofbench.errors import DofbenchError


@pytest.fixture(scope="module")
def reported(tmp_path_factory, invoke, synth, registry_text):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "reg").mkdir()
    (tmp / "reg" / "mine.toml").write_text(registry_text)
    mp = pytest.MonkeyPatch()
    mp.setenv(references.ENV_REGISTRY, str(tmp / "reg"))
    try:
        store = synth.make_store(tmp / "s.duckdb", burnin=False)
        store.write_run("synth", started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:01:00+00:00",
                        wall_s=60.0, executor="process", workers=2, trials=17, skipped=0, ok=15, diverged=1,
                        failed=1, compute_s=115.0)
        res = invoke("report", "synth", "--db", str(store.path), "--out", str(tmp / "out"))
    finally:
        mp.undo()
    return store, res, tmp / "out"


def test_report_cli_prints_the_html_path(reported):
    store, res, out = reported
    assert res.exit_code == 0, res.stderr
    assert res.output.strip() == str(out / "report.html")
    assert (out / "report.md").exists()


def test_html_is_self_contained_with_every_plot_that_has_data(reported):
    store, _, out = reported
    page = (out / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in page and "<script" not in page
    # five kinds have data (no method parameter is swept in this suite); each image decodes to the PNG written
    kinds = re.findall(r'<img alt="(\w+)"', page)
    assert kinds == ["phase", "ps", "accuracy", "dstar", "curves"] and "No data for: sweep" in page
    for kind, src in zip(kinds, srcs):
        assert base64.b64decode(src.split(",", 1)[1]) == (out / "figures" / f"synth-{kind}.png").read_bytes()


def test_report_shows_settings_leaderboard_references_and_environment(reported):
    store, _, out = reported
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (page, md):
        assert "synthetic suite for plot tests" in text and "best_train_acc" in text and "δ = 0.25" in text
        assert "Leaderboard" in text and "Published references" in text and "Environment" in text
    # the leaderboard's d* values are in the Markdown table, row by row
    lb = Session(db=store.path).leaderboard("synth")
    assert lb.render("markdown") in md
    # the matching reference, with its ratio, and the loaded references
    comp = Session(db=store.path).references("synth")
    assert len(comp) == 2 and comp.render("markdown") in md
    assert "4 published references loaded" in md and "4 published references loaded" in page
    # trial environment (versions stored with the trials, device) and the report's own
    assert "dofbench test, torch x" in md and "| cpu |" in md
    import torch
    assert f"torch {torch.__version__}" in md and "<dt>matplotlib</dt>" in page
    # markdown images point at files next to it
    for rel in re.findall(r"!\[\w+\]\(([^)]+)\)", md):
        assert (out / rel).is_file()


def test_unknown_suite_is_one_line(tmp_path, reported, invoke):
    store, _, _ = reported
    with pytest.raises(DofbenchError, match="suite 'nope': not in .*; stored suites: synth"):
        Session(db=store.path).report("nope", tmp_path)
    res = invoke("report", "nope", "--db", str(store.path), "--out", str(tmp_path))
    assert res.exit_code == 1 and res.stderr.count("\n") == 1


def test_the_report_opens_with_the_comparison(reported):
    store, _, out = reported
    page = (out / "report.html").read_text()
    body = page[page.index("<body>"):]
    first_table = body.index("<table")
    assert body.index("<h2 id='comparison'>Comparison</h2>") < first_table < body.index("<h2>Suite</h2>")
    assert body[first_table:].startswith("<table class='compare'>")
    comp = Session(db=store.path).compare("synth")
    assert comp.to_html() in page and comp.tasks[0].reading in page
    md = (out / "report.md").read_text()
    assert md.index("## Comparison") < md.index("## Suite") and comp.render("markdown") in md
    # the leaderboard leaves out its empty columns and shows the constant ones once
    lb = page[page.index("<h2>Leaderboard</h2>"):page.index("<h2>Published references</h2>")]
    assert "d_star_hi" not in lb and "suite: <b>synth</b>" in lb


def test_the_report_shows_the_runs_wall_time_next_to_the_summed_compute(reported):
    store, _, out = reported
    page = (out / "report.html").read_text()
    assert ("Wall time: 60.0 s over 1 run (last: 60.0 s, process, 2 workers); the trials these runs stored summed "
            "115.0 s of compute, 1.9× the wall time.") in page
    assert "<th>compute_s</th>" in page and "<th>wall_s</th>" in page
