"""A shareable report of one suite, drawn from the store: ``report.html`` (self-contained, figures
embedded as base64 PNG) and ``report.md`` (figures next to it under ``figures/``).

Sections: the comparison (methods × ε table of d* and its reading, as ``dofbench compare``), the
suite's settings, its runs (wall time next to the compute the trials summed), the leaderboard, the
comparison with published references, every plot kind that has data, and the environment
(versions and devices that produced the results, and the versions that wrote the report).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import platform
import re
from pathlib import Path
from typing import Any

from dofbench.engine.result import dofbench_version
from dofbench.errors import DofbenchError
from dofbench.report.plots import PLOT_KINDS, Plot, render
from dofbench.results import queries
from dofbench.results.compare import Comparison, comparison
from dofbench.results.references import compare, references_table
from dofbench.results.store import Store
from dofbench.results.table import Table

FIGURES = "figures"
COMPARISON_TEXT = ("The threshold training dimension d* of every method at every success level ε, with its "
                   "interval and d*/D, per task; the same table as `dofbench compare`.")


def collect(store: Store, suite: str, out_dir: Path) -> dict[str, Any]:
    """Everything the report shows, read from the store (figures are written to out_dir/figures)."""
    with store.read() as con:
        row = queries.suite_definition(con, suite)
        if row is None:
            known = queries.defined_suites(con)
            raise DofbenchError(f"suite {suite!r}: not in {store.path}; stored suites: {', '.join(known) or 'none'}")
        thresholds = queries.suite_thresholds(con, suite)
        status = Table(["status", "trials", "compute_s"], queries.status_counts(con, suite))
        runs = queries.runs(con, suite)
        env = queries.environments(con, suite)
        refs = references_table(con)
        references_cmp = compare(con, suite)
    methods: Comparison = comparison(store, suite)
    plots = render(store, PLOT_KINDS, suite, out_dir / FIGURES, formats=("png",), skip_empty=True)
    produced = Table(["versions", "device", "trials"],
                     [(", ".join(f"{k} {v}" for k, v in json.loads(v or "{}").items()), dev, n) for v, dev, n in env])
    return {
        "suite": suite, "description": row["description"] or "", "spec": json.loads(row["spec"] or "{}"),
        "source": row["source"], "updated_at": row["updated_at"], "store": str(store.path),
        "thresholds": {"metric": thresholds[0]["metric"] if thresholds else None,
                       "epsilons": [t["epsilon"] for t in thresholds],
                       "delta": thresholds[0]["delta"] if thresholds else None},
        "status": status, "runs": runs, "leaderboard": queries.leaderboard(store, suite), "comparison": references_cmp,
        "methods": methods,
        "references": refs, "plots": plots, "produced_by": produced, "report_env": report_environment(),
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def report_environment() -> dict[str, str]:
    import duckdb
    import matplotlib
    import numpy
    import torch

    return {"dofbench": dofbench_version(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "duckdb": duckdb.__version__, "matplotlib": matplotlib.__version__,
            "platform": platform.platform(), "cuda": torch.version.cuda if torch.cuda.is_available() else "not available"}


def runs_table(runs: list[dict[str, Any]]) -> Table:
    return Table(["started_at", "wall_s", "executor", "workers", "ran", "skipped", "compute_s", "stopped"],
                 [(str(r["started_at"])[:19], round(r["wall_s"] or 0.0, 1), r["executor"], r["workers"],
                   (r["ok"] or 0) + (r["diverged"] or 0) + (r["failed"] or 0), r["skipped"],
                   round(r["compute_s"] or 0.0, 1), r["stopped"]) for r in runs])


def time_line(data: dict[str, Any]) -> str:
    """The run's wall time next to the summed compute of its trials."""
    compute = sum(r[2] or 0.0 for r in data["status"].rows)
    runs = data["runs"]
    if not runs:
        return (f"Trials' summed compute: {compute:,.1f} s (no run of this suite is recorded in the store, "
                "so its wall time is unknown; trials shared with another suite count where they ran).")
    wall = sum(r["wall_s"] or 0.0 for r in runs)
    ran_compute = sum(r["compute_s"] or 0.0 for r in runs)
    last = runs[-1]
    how = last["executor"] + (f", {last['workers']} workers" if last["workers"] else "")
    speed = f", {ran_compute / wall:.1f}× the wall time" if wall > 0 and ran_compute > 0 else ""
    plural = "s" if len(runs) != 1 else ""
    return (f"Wall time: {wall:,.1f} s over {len(runs)} run{plural} (last: {last['wall_s']:,.1f} s, {how}); "
            f"the trials these runs stored summed {ran_compute:,.1f} s of compute{speed}. "
            f"All of the suite's stored trials: {compute:,.1f} s of compute.")


def write_report(store: Store, suite: str, out_dir: str | Path) -> dict[str, Path]:
    """Write report.html and report.md for ``suite`` of ``store`` into out_dir; return their paths."""
    out = Path(out_dir)
    data = collect(store, suite, out)  # reads the store first: nothing is written if it cannot be read
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "markdown": out / "report.md"}
    paths["html"].write_text(render_html(data), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(data, out), encoding="utf-8")
    return paths


# ------------------------------------------------------------------------------ markdown
def _settings_lines(data: dict[str, Any]) -> list[tuple[str, str]]:
    spec, th = data["spec"], data["thresholds"]
    out = [("description", data["description"])]
    for key in ("models", "datasets", "methods", "dims", "seeds", "train"):
        if key in spec:
            out.append((key, json.dumps(spec[key], ensure_ascii=False)))
    out += [("threshold", f"metric {th['metric']}, ε ∈ {th['epsilons']}, δ = {th['delta']} "
                          f"(d* = smallest d with P_s ≥ 1 − δ)"),
            ("suites file", str(data["source"])), ("last run", str(data["updated_at"])), ("store", data["store"])]
    return out


def render_markdown(data: dict[str, Any], out: Path) -> str:
    lines = [f"# dofbench report: {data['suite']}", "", f"Generated {data['generated_at']}.", "",
             "## Comparison", "", COMPARISON_TEXT, "", data["methods"].render("markdown"), "", "## Suite", ""]
    lines += [f"- **{k}**: {v}" for k, v in _settings_lines(data)]
    lines += ["", data["status"].render("markdown"), "", "### Runs", "", time_line(data), ""]
    if data["runs"]:
        lines += [runs_table(data["runs"]).render("markdown"), ""]
    lines += ["## Leaderboard", "",
              "Ranked within each task and ε by d*, ties broken by d*/D, then the width of d*'s interval.", "",
              data["leaderboard"].render("markdown") if len(data["leaderboard"]) else "_no results_", "",
              "## Published references", ""]
    lines += _comparison_md(data)
    lines += ["", "## Plots", ""]
    for p in data["plots"]:
        png = next((x for x in p.paths if x.suffix == ".png"), None)
        rel = png.relative_to(out).as_posix() if png is not None else ""
        lines += [f"### {p.kind}: {p.title}", "", f"![{p.kind}]({rel})", ""]
    missing = [k for k in PLOT_KINDS if k not in {p.kind for p in data["plots"]}]
    if missing:
        lines += [f"_No data for: {', '.join(missing)}._", ""]
    lines += ["## Environment", "", "Results produced with:", "", data["produced_by"].render("markdown"), "",
              "Report written with: " + ", ".join(f"{k} {v}" for k, v in data["report_env"].items()), ""]
    return "\n".join(lines)


def _comparison_md(data: dict[str, Any]) -> list[str]:
    comp = data["comparison"]
    lines = ["Measured next to published where model, dataset, method and rule match; ratio = measured / published.", ""]
    lines.append(comp.render("markdown") if len(comp) else "_No result of this suite matches a published reference._")
    lines += ["", f"<details><summary>{len(data['references'])} published references loaded</summary>", "",
              data["references"].render("markdown"), "", "</details>"]
    return lines


# ------------------------------------------------------------------------------ html
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f2f2f2}tr:nth-child(even) td{background:#fafafa}code{background:#f4f4f4;padding:0 3px}
img{max-width:100%;border:1px solid #eee}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}
dt{font-weight:600}dd{margin:0}.muted{color:#777}
table.compare{font-size:.95em}table.compare td{text-align:right;white-space:nowrap}td{white-space:nowrap}
.lifted{font-size:.9em;margin-bottom:.2em}
table.compare tbody th{background:none;font-weight:600}.reading{font-weight:500;max-width:60em}
"""


def _code(escaped: str) -> str:
    """`x` spans of an escaped text as <code>x</code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _html_table(t: Table, lift_constant: bool = False) -> str:
    return t.to_html(lift_constant=lift_constant)


def _img(p: Plot) -> str:
    png = next((x for x in p.paths if x.suffix == ".png"), None)
    if png is None:
        return ""
    b64 = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(p.kind)}" src="data:image/png;base64,{b64}">'


def render_html(data: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dofbench report: {e(data['suite'])}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>dofbench report: {e(data['suite'])}</h1>",
             f"<p class='muted'>Generated {e(data['generated_at'])}.</p>",
             "<h2 id='comparison'>Comparison</h2>", f"<p>{_code(e(COMPARISON_TEXT))}</p>", data["methods"].to_html(),
             "<h2>Suite</h2><dl>"]
    parts += [f"<dt>{e(k)}</dt><dd><code>{e(v)}</code></dd>" if k not in ("description",) else
              f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _settings_lines(data)]
    parts += ["</dl>", _html_table(data["status"]), "<h3>Runs</h3>", f"<p>{e(time_line(data))}</p>"]
    if data["runs"]:
        parts.append(_html_table(runs_table(data["runs"])))
    parts += ["<h2>Leaderboard</h2>",
              "<p>Ranked within each task and ε by d*, ties broken by d*/D, then the width of d*'s interval.</p>",
              _html_table(data["leaderboard"], lift_constant=True), "<h2>Published references</h2>",
              "<p>Measured next to published where model, dataset, method and rule match; "
              "ratio = measured / published.</p>"]
    comp = data["comparison"]
    parts.append(_html_table(comp) if len(comp) else
                 "<p class='muted'>No result of this suite matches a published reference.</p>")
    parts += [f"<details><summary>{len(data['references'])} published references loaded</summary>",
              _html_table(data["references"]), "</details>", "<h2>Plots</h2>"]
    for p in data["plots"]:
        parts += [f"<h3>{e(p.kind)}: {e(p.title)}</h3>", _img(p)]
    missing = [k for k in PLOT_KINDS if k not in {p.kind for p in data["plots"]}]
    if missing:
        parts.append(f"<p class='muted'>No data for: {e(', '.join(missing))}.</p>")
    parts += ["<h2>Environment</h2><p>Results produced with:</p>", _html_table(data["produced_by"]),
              "<p>Report written with:</p><dl>"]
    parts += [f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in data["report_env"].items()]
    parts.append("</dl></body></html>")
    return "\n".join(parts)
