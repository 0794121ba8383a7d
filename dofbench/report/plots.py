"""Plots of stored results (matplotlib, headless): every plot reads only from the store, so it can be
drawn for any past run, and returns the data it drew so tests and reports can check it.

Kinds: ``phase`` (P_s as colour over (d, ε) with the d* curve and, where the ``predictions`` table
has rows, the predicted curve; one panel per method), ``ps`` (P_s vs d, every method of a task on
one axis, one panel per ε), ``accuracy`` (the suite's metric vs d, every method of a task on one
axis, mean ± std over seeds, D marked), ``dstar`` (d* vs ε per method), ``sweep`` (d* vs a method
parameter the suite varies, e.g. burn-in steps) and ``curves`` (training curves of the suite's
metric from ``evals``, train solid and test dashed, one colour per d).

A :class:`Plot` holds its matplotlib figure: it shows inline in a notebook and ``save`` writes it.
Titles name models and datasets like methods, with their non-default params.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dofbench.errors import DofbenchError
from dofbench.results import queries
from dofbench.results.store import Store

PLOT_KINDS = ("phase", "ps", "accuracy", "dstar", "sweep", "curves")
FORMATS = ("png", "svg")
Key = tuple  # (model, model_params, dataset, dataset_params, method, params, …)


@dataclass(repr=False)
class Plot:
    """A rendered plot: its kind, suite, the matplotlib ``figure``, the files written and the data
    drawn, panel by panel. Shows as the figure in a notebook; :meth:`save` writes it."""

    kind: str
    suite: str
    title: str
    panels: list[dict[str, Any]]
    paths: list[Path] = field(default_factory=list)
    figure: Any = None

    def save(self, path: str | Path, dpi: int = 110, **kwargs: Any) -> Path:
        """Write the figure to ``path`` (format from its suffix: .png, .svg, .pdf, …)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figure.savefig(path, dpi=dpi, **kwargs)
        return path

    def png(self, dpi: int = 90) -> bytes:
        import io

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def _repr_png_(self) -> bytes:  # notebooks: the figure, not the data
        return self.png()

    def __repr__(self) -> str:
        files = f", files {[str(p) for p in self.paths]}" if self.paths else ""
        return f"<Plot {self.kind} of {self.suite!r}: {self.title}; {len(self.panels)} panels{files}>"


class Plots(list):
    """Several plots; in a notebook, every figure one after the other."""

    def _repr_html_(self) -> str:
        import base64
        import html

        return "".join(f"<p><b>{html.escape(p.kind)}</b>: {html.escape(p.title)}</p>"
                       f'<img src="data:image/png;base64,{base64.b64encode(p.png()).decode()}">' for p in self)


class NothingToPlot(DofbenchError):
    """The store has no data for this plot kind and suite."""


# ------------------------------------------------------------------------------ reading
_METRIC = re.compile(r"^(best_)?(train|test)_(.+)$")


def _task_title(r: dict[str, Any], with_method: bool = True) -> str:
    parts = [f"{r.get('model_label') or r['model']} / {r.get('dataset_label') or r['dataset']}"]
    if with_method:
        parts.append(str(r["label"]))
    if r.get("total_params"):
        parts.append(f"D={r['total_params']:,}")
    return " · ".join(parts)


def _key(r: dict[str, Any], *extra: str) -> Key:
    return (r["model"], r["model_params"], r["dataset"], r["dataset_params"], *(r[e] for e in extra))


def phase_data(con, suite: str) -> list[dict[str, Any]]:
    """Per (task, method, metric) with at least two d: the P_s grid over (ε, d) from `success`, d*(ε) from `leaderboard`
    and, where the `predictions` table has rows, the predicted d*(ε) with its interval."""
    stars = queries.d_star_rows(con, suite)
    preds = queries.prediction_rows(con, suite)
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in queries.success_rows(con, suite):
        groups[_key(r, "method", "params", "metric")].append(r)
    panels = []
    for key, rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[1][0]["label"])):
        ds = sorted({r["d"] for r in rs})
        if len(ds) < 2:  # a single d (e.g. a full-training baseline at d = D) has no phase diagram
            continue
        eps = sorted({r["epsilon"] for r in rs})
        grid = [[None] * len(ds) for _ in eps]
        for r in rs:
            grid[eps.index(r["epsilon"])][ds.index(r["d"])] = r["p_success"]
        d_star = {s["epsilon"]: s["d_star"] for s in stars if _key(s, "method", "params", "metric") == key}
        first = rs[0]
        predicted = {}
        for p in preds:
            if (p.get("model"), p.get("dataset"), p.get("metric")) == (key[0], key[2], key[6]) and \
                    p.get("method") in (first["method"], first["label"]) and p.get("d_star_pred") is not None:
                predicted[p["epsilon"]] = (p["d_star_pred"], p.get("d_star_pred_lo"), p.get("d_star_pred_hi"))
        panels.append({"title": _task_title(first), "model": key[0], "dataset": key[2], "method": first["label"],
                       "metric": key[6], "D": first["total_params"], "ds": ds, "epsilons": eps, "p_success": grid,
                       "d_star": {e: d_star.get(e) for e in eps},
                       "predicted": {e: predicted[e] for e in sorted(predicted)}})
    return panels


def ps_data(con, suite: str) -> list[dict[str, Any]]:
    """Per (task, metric, ε): P_s against d, one line per method (every method of a task on one
    axis; a method with a single d, e.g. full training at d = D, is a point)."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in queries.success_rows(con, suite):
        groups[_key(r, "metric", "epsilon")].append(r)
    panels = []
    for key, rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1], kv[0][3], kv[0][5])):
        lines: dict[str, list[tuple]] = defaultdict(list)
        for r in sorted(rs, key=lambda r: (r["label"], r["d"])):
            lines[r["label"]].append((r["d"], r["p_success"]))
        D = max(r["total_params"] or 0 for r in rs) or None
        first = {**rs[0], "total_params": D}
        panels.append({"title": f"{_task_title(first, with_method=False)} · ε={key[5]:g}", "model": key[0],
                       "dataset": key[2], "metric": key[4], "epsilon": key[5], "D": D, "lines": dict(lines)})
    return panels


def accuracy_data(con, suite: str, metric: str | None = None) -> list[dict[str, Any]]:
    """Per task: the suite's metric (or ``metric``), mean and standard deviation over seeds against d,
    one line per method."""
    metric = metric or queries.suite_metric(con, suite)
    if not metric:
        return []
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in queries.metric_by_d(con, suite, metric):
        groups[_key(r)].append(r)
    panels = []
    for key, rs in groups.items():
        lines: dict[str, list[tuple]] = defaultdict(list)
        for r in rs:
            lines[r["label"]].append((r["d"], r["mean"], r["std"] or 0.0, r["n"]))
        D = max(r["total_params"] or 0 for r in rs) or None
        panels.append({"title": _task_title({**rs[0], "total_params": D}, with_method=False), "model": key[0],
                       "dataset": key[2], "metric": metric, "D": D, "lines": dict(lines)})
    return panels


def dstar_data(con, suite: str) -> list[dict[str, Any]]:
    """Per (task, metric): d* against ε, one line per method (None where no d on the grid succeeds)."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in queries.d_star_rows(con, suite):
        groups[_key(r, "metric")].append(r)
    panels = []
    for key, rs in groups.items():
        lines: dict[str, list[tuple]] = defaultdict(list)
        max_d: dict[str, int] = {}
        for r in rs:
            lines[r["label"]].append((r["epsilon"], r["d_star"]))
            max_d[r["label"]] = r["max_d"]
        panels.append({"title": _task_title(rs[0], with_method=False), "model": key[0], "dataset": key[2],
                       "metric": key[4], "D": rs[0]["total_params"], "lines": dict(lines), "max_d": max_d})
    return panels


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sweep_data(con, suite: str) -> list[dict[str, Any]]:
    """Per (task, metric, method) whose configurations in the suite differ in a numeric parameter
    (e.g. the burn-in steps t of a burn-in subspace): d* against that parameter, one line per ε and
    setting of the method's other varying parameters. With several numeric parameters varying, the
    one with the most values is the x axis."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in queries.d_star_rows(con, suite):
        groups[_key(r, "metric", "method")].append({**r, "p": json.loads(r["params"] or "{}")})
    panels = []
    for key, rs in groups.items():
        names = sorted({k for r in rs for k in r["p"]})
        values = {k: {json.dumps(r["p"].get(k)) for r in rs} for k in names}
        varying = [k for k in names if len(values[k]) > 1]
        numeric = [k for k in varying if all(_numeric(r["p"].get(k)) for r in rs)]
        if not numeric:
            continue
        x = max(numeric, key=lambda k: (len(values[k]), [-ord(c) for c in k]))
        lines: dict[str, list[tuple]] = defaultdict(list)
        for r in rs:
            rest = ",".join(f"{k}={json.dumps(r['p'].get(k))}" for k in varying if k != x)
            lines[f"ε={r['epsilon']:g}" + (f" [{rest}]" if rest else "")].append((r["p"][x], r["d_star"]))
        panels.append({"title": _task_title({**rs[0], "label": key[5]}), "model": key[0], "dataset": key[2],
                       "method": key[5], "param": x, "metric": key[4], "D": rs[0]["total_params"],
                       "lines": {k: sorted(v) for k, v in sorted(lines.items())}})
    return panels


def curves_data(con, suite: str, metric: str | None = None) -> list[dict[str, Any]]:
    """Per (task, method): the mean over seeds of an evaluated metric against the step, one line per
    d and split (train and test). By default the metric of the suite's success metric (``acc`` for
    best_train_acc, ``loss`` for test_loss, a plugin's ``ece`` …); ``split`` is the suite's own split.
    ``lines[split][d]`` are the (step, mean) points."""
    m = _METRIC.match(queries.suite_metric(con, suite) or "")
    if m is None and metric is None:
        return []
    own_split = m.group(2) if m else "train"
    metric = metric or m.group(3)
    groups: dict[Key, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for split in ("train", "test"):
        for r in queries.curve_rows(con, suite, split, metric):
            groups[_key(r, "method", "params")][split].append(r)
    panels = []
    for key, by_split in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], _first(kv[1])["label"])):
        lines: dict[str, dict[int, list[tuple]]] = {}
        for split, rs in by_split.items():
            per_d: dict[int, list[tuple]] = defaultdict(list)
            for r in rs:
                per_d[r["d"]].append((r["step"], r["mean"]))
            lines[split] = dict(per_d)
        first = _first(by_split)
        panels.append({"title": _task_title(first), "model": key[0], "dataset": key[2], "method": first["label"],
                       "split": own_split, "metric": metric, "D": first["total_params"], "lines": lines})
    return panels


def _first(by_split: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return next(rs[0] for rs in by_split.values() if rs)


# ------------------------------------------------------------------------------ drawing
PANEL_IN = (6.4, 4.4)  # inches per panel; two panels a row, so a report page shows them at ≈600 px
SINGLE_IN = (9.6, 5.2)  # a figure of one panel: the page's width
MAX_COLS = 2
MAX_TICKS = 8
DISCRETE_D = 10        # training curves: one legend entry per d up to this many d, a colour bar beyond


def _figure(n: int):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed (Agg)

    ncols = min(MAX_COLS, max(1, n))
    nrows = math.ceil(n / ncols)
    size = SINGLE_IN if n == 1 else (PANEL_IN[0] * ncols, PANEL_IN[1] * nrows)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _label(ax, panel: dict[str, Any], xlabel: str, ylabel: str, legend: bool = False) -> None:
    """Axis labels, the panel's title and (optionally) the legend of one panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(panel["title"], fontsize=10)
    ax.grid(True, which="major", alpha=0.25)
    if legend:
        ax.legend(fontsize=8)


def _shared_legend(fig, axes, handles=None) -> None:
    """One legend for the whole figure, below its panels (never over the data): the labels of
    every panel, each once (or the ``handles`` given)."""
    if handles is None:
        seen: dict[str, Any] = {}
        for ax in axes:
            for h, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, h)
        handles = list(seen.values())
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=_legend_cols(fig, handles), fontsize=9,
                   frameon=False)


def _legend_cols(fig, handles, fontsize: float = 9) -> int:
    """As many legend columns as the figure's width holds for its longest label (about half an
    em a character, plus the line sample), at most 6."""
    longest = max(len(h.get_label()) for h in handles)
    width_pt = fig.get_figwidth() * 72
    return max(1, min(6, len(handles), int(width_pt // (0.55 * fontsize * longest + 40))))


def compact(v: float) -> str:
    """A tick label: 8, 512, 2048, 15.2k, 1.2M."""
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:g}"


def _log_axis(ax, values: list[float], axis: str = "x") -> None:
    """A log axis whose labelled ticks are the values drawn (the grid's d; thinned to at most
    MAX_TICKS, keeping the ends), written plainly; minor ticks carry no label, so none overlap."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    vals = sorted({float(v) for v in values if v is not None and v > 0})
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    if not vals:
        return
    step = math.ceil(len(vals) / MAX_TICKS)
    ticks = vals[::step]
    if ticks[-1] != vals[-1]:
        ticks = ticks[:-1] + [vals[-1]] if len(ticks) > 1 and _close(ticks[-1], vals[-1]) else ticks + [vals[-1]]
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda v, _: compact(v)))
    target.set_minor_formatter(NullFormatter())


def _close(a: float, b: float) -> bool:
    """Two ticks too near on a log axis to carry both labels."""
    return abs(math.log10(b) - math.log10(a)) < 0.25


def _colours(labels: list[str]) -> dict[str, Any]:
    """One colour per method label, the same in every panel of a figure."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def _stacked(i: int) -> dict[str, float]:
    """Marker size and line width of the i-th line of an axis, shrinking with i: lines that
    coincide (two methods both at P_s = 1, say) still show every colour, as concentric markers
    and nested strokes, instead of the last one drawn hiding the others."""
    return {"ms": max(10.0 - 2.0 * i, 4.0), "lw": max(3.5 - 0.6 * i, 1.2)}


def _edges(values: list[float], log: bool) -> list[float]:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    if len(values) == 1:
        v = values[0]
        return [v / 2, v * 2] if log else [v - 0.05, v + 0.05]
    mid = [math.sqrt(a * b) if log else (a + b) / 2 for a, b in zip(values, values[1:])]
    first = values[0] ** 2 / mid[0] if log else 2 * values[0] - mid[0]
    last = values[-1] ** 2 / mid[-1] if log else 2 * values[-1] - mid[-1]
    return [first, *mid, last]


def _line_figure(panels: list[dict[str, Any]]):
    """A figure of one axis per panel whose lines are methods, and one colour per method across them."""
    fig, axes = _figure(len(panels))
    return fig, axes, _colours(sorted({label for p in panels for label in p["lines"]}))


def _finish(fig, axes, title: str):
    """The legend shared by the panels, the title; the figure."""
    _shared_legend(fig, axes)
    fig.suptitle(title)
    return fig


def draw_phase(panels: list[dict[str, Any]], suite: str):
    import numpy as np

    fig, axes = _figure(len(panels))
    for ax, p in zip(axes, panels):
        grid = np.array([[np.nan if v is None else v for v in row] for row in p["p_success"]], dtype=float)
        mesh = ax.pcolormesh(_edges(p["ds"], True), _edges(p["epsilons"], False), np.ma.masked_invalid(grid),
                             cmap="viridis", vmin=0.0, vmax=1.0, shading="flat")
        _log_axis(ax, p["ds"])
        pts = [(d, e) for e, d in p["d_star"].items() if d is not None]
        if pts:
            ax.plot([d for d, _ in pts], [e for _, e in pts], "o-", color="white", mec="black", lw=2, label="d* (measured)")
        if p["predicted"]:
            eps = list(p["predicted"])
            mid = [p["predicted"][e][0] for e in eps]
            ax.plot(mid, eps, "--", color="tab:red", lw=2, label="d* (predicted)")
            lo = [p["predicted"][e][1] for e in eps]
            hi = [p["predicted"][e][2] for e in eps]
            if all(v is not None for v in lo + hi):
                ax.fill_betweenx(eps, lo, hi, color="tab:red", alpha=0.2, lw=0)
        ax.set_xlim(_edges(p["ds"], True)[0], _edges(p["ds"], True)[-1])
        _label(ax, p, "training dimension d", f"ε ({p['metric']})")
        ax.grid(False)
        if pts or p["predicted"]:
            ax.legend(fontsize=8, loc="best")
        fig.colorbar(mesh, ax=ax, label="success probability P_s")
    fig.suptitle(f"{suite}: phase diagram of P_s(d, ε)")
    return fig


def draw_ps(panels: list[dict[str, Any]], suite: str):
    fig, axes, colour = _line_figure(panels)
    for ax, p in zip(axes, panels):
        ds = []
        for i, (label, pts) in enumerate(p["lines"].items()):
            ax.plot([d for d, _ in pts], [v for _, v in pts], "o-", color=colour[label], label=label, **_stacked(i))
            ds += [d for d, _ in pts]
        _log_axis(ax, ds)
        ax.set_ylim(-0.03, 1.03)
        _label(ax, p, "training dimension d", f"P_s ({p['metric']} reaches ε)")
    return _finish(fig, axes, f"{suite}: success probability against d, every method on one axis")


def draw_accuracy(panels: list[dict[str, Any]], suite: str):
    fig, axes, colour = _line_figure(panels)
    for ax, p in zip(axes, panels):
        ds = []
        for i, (label, pts) in enumerate(p["lines"].items()):
            xs = [x[0] for x in pts]
            mean = [x[1] for x in pts]
            std = [x[2] for x in pts]
            ax.plot(xs, mean, "o-", color=colour[label], label=label, **_stacked(i))
            ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=colour[label], alpha=0.15)
            ds += xs
        if p["D"]:
            ax.axvline(p["D"], color="gray", ls=":", lw=1.5)
            ax.annotate(f"D={p['D']:,}", (p["D"], 0.02), xycoords=("data", "axes fraction"), rotation=90,
                        ha="right", va="bottom", fontsize=8, color="gray")
        _log_axis(ax, ds + ([p["D"]] if p["D"] else []))
        _label(ax, p, "training dimension d", f"{p['metric']} (mean ± std over seeds)")
    return _finish(fig, axes, f"{suite}: {panels[0]['metric']} against d, every method on one axis")


def draw_dstar(panels: list[dict[str, Any]], suite: str):
    fig, axes, colour = _line_figure(panels)
    for ax, p in zip(axes, panels):
        ys = []
        for i, (label, pts) in enumerate(p["lines"].items()):
            found = [(e, d) for e, d in pts if d is not None]
            ax.plot([e for e, _ in found], [d for _, d in found], "o-", color=colour[label], label=label,
                    **_stacked(i))
            ys += [d for _, d in found]
            missing = [e for e, d in pts if d is None]
            if missing and p["max_d"].get(label):
                ax.plot(missing, [p["max_d"][label]] * len(missing), "^", mfc="none", color=colour[label],
                        label=f"{label}: d* > largest d")
                ys.append(p["max_d"][label])
        if p["D"]:
            ax.axhline(p["D"], color="gray", ls=":", lw=1.5, label=f"D={p['D']:,}")
            ys.append(p["D"])
        _log_axis(ax, ys, axis="y")
        _label(ax, p, f"ε ({p['metric']})", "threshold training dimension d*")
    return _finish(fig, axes, f"{suite}: d* against ε")


def draw_sweep(panels: list[dict[str, Any]], suite: str):
    fig, axes = _figure(len(panels))
    for ax, p in zip(axes, panels):
        xs, ys = [], []
        for i, (label, pts) in enumerate(p["lines"].items()):
            found = [(t, d) for t, d in pts if d is not None]
            ax.plot([t for t, _ in found], [d for _, d in found], "o-", label=label, **_stacked(i))
            xs += [t for t, _ in pts]
            ys += [d for _, d in found]
        if xs and min(xs) > 0:
            _log_axis(ax, xs)
        elif xs and max(xs) > 10:
            ax.set_xscale("symlog", linthresh=1)
        _log_axis(ax, ys, axis="y")
        _label(ax, p, f"{p['method']}: {p['param']}", "threshold training dimension d*", legend=True)
    fig.suptitle(f"{suite}: d* against a swept method parameter")
    return fig


def draw_curves(panels: list[dict[str, Any]], suite: str):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, LogNorm
    from matplotlib.lines import Line2D

    fig, axes = _figure(len(panels))
    cmap = colormaps["viridis"]
    every_d = sorted({d for p in panels for per_d in p["lines"].values() for d in per_d})
    discrete = len(every_d) <= DISCRETE_D
    if discrete:  # a few d: one distinct colour each (the same in every panel), named in the legend
        colour = {d: cmap(0.85 * i / max(1, len(every_d) - 1)) for i, d in enumerate(every_d)}
    else:
        norm = LogNorm(vmin=min(every_d), vmax=max(every_d) if max(every_d) > min(every_d) else min(every_d) * 2)
        colour = {d: cmap(norm(d)) for d in every_d}
    for ax, p in zip(axes, panels):
        ds = sorted({d for per_d in p["lines"].values() for d in per_d})
        for split, style in (("train", "-"), ("test", "--")):
            for d in ds:
                pts = p["lines"].get(split, {}).get(d)
                if pts:
                    ax.plot([s for s, _ in pts], [v for _, v in pts], style, color=colour[d], lw=1.6)
        _label(ax, p, "step", f"{p['metric']} (mean over seeds)")
        if not discrete:
            bounds = _edges([float(d) for d in ds], True)
            fig.colorbar(ScalarMappable(norm=BoundaryNorm(bounds, cmap.N), cmap=cmap), ax=ax, label="d",
                         ticks=ds[::math.ceil(len(ds) / MAX_TICKS)])
    splits = [Line2D([], [], color="black", ls=style, label=split) for split, style in (("train", "-"), ("test", "--"))
              if any(p["lines"].get(split) for p in panels)]
    if discrete:
        handles = [Line2D([], [], color=colour[d], lw=2.5, label=f"d={compact(d)}") for d in every_d]
        fig.legend(handles=handles + splits, loc="outside lower center", ncols=_legend_cols(fig, handles + splits),
                   fontsize=9, frameon=False)
    else:
        fig.legend(handles=splits, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    fig.suptitle(f"{suite}: training curves of {panels[0]['metric']}, train solid and test dashed")
    return fig


KIND_FUNCS: dict[str, tuple[Callable, Callable, str]] = {
    "phase": (phase_data, draw_phase, "success probability over (d, ε) with the d* curve"),
    "ps": (ps_data, draw_ps, "P_s against d, every method on one axis, one panel per ε"),
    "accuracy": (accuracy_data, draw_accuracy, "metric against d, every method on one axis, mean ± std over "
                                               "seeds, D marked"),
    "dstar": (dstar_data, draw_dstar, "d* against ε per method"),
    "sweep": (sweep_data, draw_sweep, "d* against a numeric method parameter the suite varies (e.g. burn-in steps)"),
    "curves": (curves_data, draw_curves, "training curves of the suite's metric from evals, train and test, "
                                         "one colour per d"),
}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot(con, kind: str, suite: str, out_dir: str | Path | None = None,
         formats: tuple[str, ...] = FORMATS) -> Plot:
    """Draw one plot kind for one suite from an open store connection; write ``SUITE-KIND.{png,svg}``
    into ``out_dir`` when given. Raises NothingToPlot when the store has no data for it."""
    if kind not in KIND_FUNCS:
        raise DofbenchError(f"unknown plot kind {kind!r}; allowed: {', '.join(PLOT_KINDS)}")
    for f in formats:
        if f not in FORMATS:
            raise DofbenchError(f"unknown plot format {f!r}; allowed: {', '.join(FORMATS)}")
    data_fn, draw_fn, what = KIND_FUNCS[kind]
    panels = data_fn(con, suite)
    if not panels:
        raise NothingToPlot(f"nothing to plot for `{kind}` ({what}): suite {suite!r} has no such results in the store")
    fig = draw_fn(panels, suite)
    result = Plot(kind, suite, what, panels, figure=fig)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for f in formats:
            path = out / f"{_safe(suite)}-{kind}.{f}"
            fig.savefig(path, dpi=110, format=f)
            result.paths.append(path)
    return result


def render(store: Store, kinds: list[str] | tuple[str, ...], suite: str | None, out_dir: str | Path | None,
           formats: tuple[str, ...] = FORMATS, skip_empty: bool = False) -> Plots:
    """Draw ``kinds`` for one suite (or every suite in the store), into ``out_dir`` when given."""
    out = Plots()
    with store.read() as con:
        stored = queries.stored_suites(con)
        suites = [suite] if suite else stored
        if suite and suite not in stored:
            raise DofbenchError(f"--suite {suite!r}: no such suite in {store.path}; stored: "
                                f"{', '.join(stored) or 'none'}")
        if not suites:
            raise DofbenchError(f"no suites in {store.path}; run `dofbench run SUITE` first")
        for s in suites:
            for kind in kinds:
                try:
                    out.append(plot(con, kind, s, out_dir, formats))
                except NothingToPlot:
                    if not skip_empty:
                        raise
    return out
