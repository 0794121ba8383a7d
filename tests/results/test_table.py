"""Rendered tables: empty columns left out, cut to a terminal's width (numbers never), every column
and character kept in csv, json and pandas; HTML for notebooks."""

from __future__ import annotations

import json

import pytest

from dofbench.results.table import Table

WIDE = Table(["suite", "model", "method", "epsilon", "d_star", "d_star_hi", "total_params", "note"],
             [("quick-methods", "mlp[hidden=[100,100]]", f"burn-in-subspace[projection=\"auto\",steps={t}]", e,
               128 * (i + 1), None, 15210, "x" * 120) for i, (t, e) in enumerate([(8, 0.2), (32, 0.3), (128, 0.4)])])


def test_empty_columns_are_left_out_of_rendered_tables_only():
    assert "d_star_hi" not in WIDE.render("table") and "d_star_hi" not in WIDE.render("markdown")
    assert "d_star_hi" not in WIDE.to_html()
    assert WIDE.render("csv").splitlines()[0].split(",") == WIDE.columns
    assert all("d_star_hi" in r for r in json.loads(WIDE.render("json")))
    kept = Table(WIDE.columns, WIDE.rows, hide_empty=False)  # a query's own columns
    assert "d_star_hi" in kept.render("table")


def test_a_table_fits_the_width_and_numbers_are_never_cut():
    text = WIDE.render("table", width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    # the columns with one value in every row move above the table, the long cells are cut with …
    assert text.splitlines()[0].startswith("suite: quick-methods · model: mlp[hidden=[100,100]]")
    assert "total_params: 15210" in text and "…" in text
    for d in ("128", "256", "384"):
        assert d in text
    full = WIDE.render("table")  # no width: every character (what --wide prints)
    assert "x" * 120 in full and "…" not in full


def test_to_pandas_and_html():
    pd = pytest.importorskip("pandas")
    df = WIDE.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == WIDE.columns and len(df) == 3
    assert df["d_star"].tolist() == [128, 256, 384]
    html = Table(["a"], [("<b>",)])._repr_html_()
    assert "&lt;b&gt;" in html and html.startswith("<table>")
    many = Table(["i"], [(i,) for i in range(100)])._repr_html_()
    assert "40 more rows" in many
