"""The comparison a researcher reads first: per task, a methods × ε table of d* with its interval
and d*/D, and a one-line reading of how many times fewer dimensions the best method needs than the
suite's yardstick (the method that declares ``yardstick``: random affine subspaces).

``dofbench compare``, :meth:`dofbench.Session.compare` and the report's first table all come from
:func:`comparison`. Each cell is ``d* [lo,hi]`` with ``d*/D`` under it: ``>2048`` where no d of
the grid (up to 2048) reaches P_s ≥ 1 − δ, ``≤8`` where already the grid's smallest d does (the
true threshold may be lower), ``–`` as the interval's upper end where the seeds run do not confirm
P_s ≥ 1 − δ at any d of the grid, and ``?`` after d* where some d of the method's grid lack seeds
(failed or not run: d* may still move; ``?`` alone where no complete d reaches it). ``csv``, ``json`` and :meth:`Comparison.to_pandas` give the
numbers, one row per (task, method, ε).
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass, field
from typing import Any

from dofbench.results import queries
from dofbench.results.table import FORMATS, Table, fit_widths, truncate

LONG_COLUMNS = ("suite", "model", "dataset", "D", "method", "yardstick", "metric", "epsilon", "delta", "d_star",
                "d_star_lo", "d_star_hi", "d_star_fraction", "min_d", "max_d", "n_seeds", "complete", "rank")
LEGEND = ("d* [interval] and d*/D; >N: no d ≤ N reaches P_s ≥ 1 − δ; ≤N: the smallest d run already does; "
          "–: the seeds run confirm no upper end on the grid; ?: some d lack seeds (failed or not run)")


@dataclass(repr=False)
class TaskComparison:
    """One task (suite, model, dataset, metric) of a comparison."""

    suite: str
    model: str
    dataset: str
    D: int | None
    metric: str
    higher_is_better: bool
    delta: float
    epsilons: list[float]
    methods: list[str]                        # labels, best first (mean rank over ε)
    cells: dict[tuple[str, float], dict[str, Any]]
    yardsticks: list[str] = field(default_factory=list)
    reading: str = ""

    @property
    def title(self) -> str:
        D = f" · D = {self.D:,}" if self.D else ""
        return f"{self.suite}: {self.model} / {self.dataset}{D}"

    @property
    def criterion(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        return f"success: {self.metric} {op} ε · d* = smallest d with P_s ≥ {1 - self.delta:g}"

    def __repr__(self) -> str:
        return f"<TaskComparison {self.title}: {len(self.methods)} methods × {len(self.epsilons)} ε>"

    def cell(self, method: str, eps: float) -> dict[str, Any] | None:
        return self.cells.get((method, eps))

    def best(self, eps: float) -> list[str]:
        """The labels with the smallest d* at ε (none: no method reaches it)."""
        found = [(c["d_star"], m) for m in self.methods if (c := self.cell(m, eps)) and c["d_star"] is not None]
        if not found:
            return []
        low = min(d for d, _ in found)
        return [m for d, m in found if d == low]


def at_floor(c: dict[str, Any]) -> bool:
    """d* is the smallest d the method ran (with other d above it): the threshold may be lower."""
    return c["d_star"] is not None and c.get("min_d") is not None and c["d_star"] == c["min_d"] \
        and (c.get("max_d") or 0) > c["min_d"]


def incomplete(c: dict[str, Any]) -> bool:
    """Some d of the method's grid lack seeds (failed or not run), so d* may still move."""
    return c.get("complete") is False


def star_text(c: dict[str, Any]) -> str:
    """d* alone: ``>max_d`` where the grid does not reach it, ``≤min_d`` at the grid's floor, a
    ``?`` after it (or alone) where some d of the grid lack seeds."""
    mark = "?" if incomplete(c) else ""
    if c["d_star"] is None:
        return mark or (f">{c['max_d']}" if c.get("max_d") else "–")
    return (f"≤{c['d_star']}" if at_floor(c) else str(c["d_star"])) + mark


def d_text(c: dict[str, Any] | None) -> str:
    """``d* [lo,hi]`` of one cell (see the module docstring)."""
    if c is None:
        return ""
    if c["d_star"] is None or (c["d_star_lo"] is None and c["d_star_hi"] is None):  # no interval computed
        return star_text(c)
    lo = c["d_star_lo"] if c["d_star_lo"] is not None else "–"
    hi = c["d_star_hi"] if c["d_star_hi"] is not None else "–"
    return f"{star_text(c)} [{lo},{hi}]"


def fraction_text(c: dict[str, Any] | None) -> str:
    if c is None or c.get("d_star_fraction") is None:
        return ""
    pct = 100 * c["d_star_fraction"]
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.2g}%"


def _ratio(x: float) -> str:
    return f"{x:.3g}×"


def against_of(yardsticks: list[str]) -> str:
    return " / ".join(yardsticks)


def reading(task: TaskComparison) -> str:
    """How many times fewer dimensions the best method needs than the yardstick, at each ε; the
    ε at which the same methods are best are read together. A ratio is a lower bound (``≥``) where
    the best d* is the grid's smallest d or the yardstick does not reach ε on the grid."""
    items: list[tuple[tuple, str]] = []  # (what is said, for merging consecutive ε; the ε's part)
    ys = task.yardsticks
    for eps in task.epsilons:
        best = task.best(eps)
        if not best:
            cells = [c for m in task.methods if (c := task.cell(m, eps))]
            if any(incomplete(c) for c in cells):  # a d that lacks seeds may still reach it
                items.append((("unreached-incomplete",), f"ε={eps:g}"))
                continue
            largest = max((c["max_d"] or 0) for c in cells) or None
            items.append((("unreached",), f"ε={eps:g}" + (f" with d ≤ {largest}" if largest else "")))
            continue
        bc = task.cell(best[0], eps)
        names = " = ".join(best)
        ycells = [c for m in ys if (c := task.cell(m, eps))]
        if not ycells:
            items.append((("best", names), f"ε={eps:g} ({star_text(bc)})"))
            continue
        reached = [c for c in ycells if c["d_star"] is not None]
        if reached:
            yc = min(reached, key=lambda c: c["d_star"])
            if yc["d_star"] <= bc["d_star"]:
                items.append((("none",), f"ε={eps:g} ({star_text(yc)})"))
                continue
            ratio, bound = yc["d_star"] / bc["d_star"], at_floor(bc)
            ytext = star_text(yc)
        elif any(incomplete(c) for c in ycells):  # the yardstick's own evidence is not all in
            items.append((("unknown", names), f"ε={eps:g} ({star_text(bc)})"))
            continue
        else:
            largest = max(c["max_d"] or 0 for c in ycells)
            if bc["d_star"] >= largest:  # beyond the yardstick's grid: no ratio can be read
                items.append((("beyond", names), f"ε={eps:g} ({star_text(bc)}; {against_of(ys)} >{largest})"))
                continue
            ratio, bound = largest / bc["d_star"], True
            ytext = f">{largest}"
        items.append((("fewer", names), f"{'≥ ' if bound else ''}{_ratio(ratio)} at ε={eps:g} "
                                        f"({star_text(bc)} vs {ytext})"))
    groups: list[tuple[tuple, list[str]]] = []
    for key, text in items:
        if groups and groups[-1][0] == key:
            groups[-1][1].append(text)
        else:
            groups.append((key, [text]))
    against = against_of(ys)
    parts = []
    for key, texts in groups:
        if key[0] == "fewer":
            parts.append(f"{key[1]} needs {texts[0].replace(' at', ' fewer dimensions at', 1)}"
                         + "".join(f", {t}" for t in texts[1:]))
        elif key[0] == "none":
            parts.append(f"no method needs fewer dimensions than {against} at {', '.join(texts)}")
        elif key[0] == "best":
            parts.append(f"{key[1]} needs the fewest dimensions at {', '.join(texts)}")
        elif key[0] == "unknown":
            parts.append(f"{key[1]} needs the fewest dimensions at {', '.join(texts)}, where {against}'s "
                         "seeds are not all in")
        elif key[0] == "beyond":
            parts.append(f"{key[1]} reaches {', '.join(texts)}, beyond the grid {against} ran")
        elif key[0] == "unreached-incomplete":
            parts.append(f"no method reaches {', '.join(texts)} on the seeds stored so far (some d lack "
                         "seeds: failed or not run)")
        else:
            parts.append(f"no method reaches {', '.join(texts)}")
    head = f"Against {against}: " if ys else ""
    return head + "; ".join(parts) + "."


@dataclass(repr=False)
class Comparison:
    """Methods × ε tables of d*, one per task; see the module docstring."""

    tasks: list[TaskComparison]

    def long(self) -> Table:
        """One row per (task, method, ε) with the numbers (every column kept)."""
        out = []
        for t in self.tasks:
            for m in t.methods:
                for e in t.epsilons:
                    c = t.cell(m, e)
                    if c is None:
                        continue
                    out.append((t.suite, t.model, t.dataset, t.D, m, m in t.yardsticks, t.metric, e, t.delta,
                                c["d_star"], c["d_star_lo"], c["d_star_hi"], c["d_star_fraction"], c["min_d"],
                                c["max_d"], c["n_seeds"], c.get("complete"), c["rank"]))
        return Table(list(LONG_COLUMNS), out, hide_empty=False)

    def __len__(self) -> int:
        return len(self.tasks)

    def pivot(self, task: TaskComparison, two_lines: bool = True) -> Table:
        """One task's methods × ε table of text cells: ``d* [lo,hi]`` and ``d*/D`` (below it, or
        after a ``·`` when ``two_lines`` is off)."""
        cols = ["method"] + [f"ε={e:g}" for e in task.epsilons]
        rows: list[tuple] = []
        for m in task.methods:
            cells = [task.cell(m, e) for e in task.epsilons]
            if two_lines:
                rows.append((m, *[d_text(c) for c in cells]))
                rows.append(("", *[fraction_text(c) for c in cells]))
            else:
                rows.append((m, *[" · ".join(x for x in (d_text(c), fraction_text(c)) if x) for c in cells]))
        return Table(cols, rows, hide_empty=False)

    def render(self, fmt: str = "table", width: int | None = None) -> str:
        """``table`` (per task: a heading, the methods × ε table, the reading; cut to ``width``),
        ``markdown``, or the numbers as ``csv`` / ``json``."""
        if fmt in ("csv", "json"):
            return self.long().render(fmt)
        if fmt not in FORMATS:
            return self.long().render(fmt)  # raises the one-line error
        if not self.tasks:
            return "no results to compare"
        blocks = []
        wrap = width or 100
        for t in self.tasks:
            if fmt == "markdown":
                blocks.append("\n".join([f"**{t.title}** — {t.criterion}", "",
                                         self.pivot(t, two_lines=False).render("markdown"), "", t.reading]))
                continue
            blocks.append("\n".join([truncate(t.title, wrap), truncate(t.criterion, wrap),
                                     *textwrap.wrap(LEGEND, wrap, break_on_hyphens=False),
                                     self._text_table(t, width),
                                     *textwrap.wrap(t.reading, wrap, subsequent_indent="  ",
                                                    break_on_hyphens=False)]))
        return "\n\n".join(blocks)

    def _text_table(self, t: TaskComparison, width: int | None) -> str:
        """The pivot as aligned text: a method's name left of its two lines where that fits
        ``width``, else on a line of its own above them."""
        table = self.pivot(t)
        text = _aligned_pairs(table, None)
        if width is None or max(len(line) for line in text.splitlines()) <= width:
            return text
        rows: list[tuple] = []
        for m, (top, bottom) in zip(t.methods, zip(table.rows[::2], table.rows[1::2])):
            rows += [(m,), ("  d*", *top[1:]), ("  d*/D", *bottom[1:])]
        cols = ["", *table.columns[1:]]
        widths = [max(len(r[i]) for r in rows if len(r) > 1 and i < len(r)) if i else 6 for i in range(len(cols))]
        widths = [max(w, len(c)) for w, c in zip(widths, cols)]
        line = lambda vals: "  ".join(str(v).ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
        out = [line(cols), line(["-" * w for w in widths])]
        out += [truncate(r[0], width) if len(r) == 1 else line(r) for r in rows]
        return "\n".join(out)

    def to_html(self) -> str:
        """The tables for a page (the report): the best d* of each ε in bold, d*/D under it."""
        if not self.tasks:
            return '<p class="muted">no results to compare</p>'
        e = html.escape
        parts = []
        for t in self.tasks:
            head = "".join(f"<th>ε = {x:g}</th>" for x in t.epsilons)
            body = []
            for m in t.methods:
                tds = []
                for x in t.epsilons:
                    c = t.cell(m, x)
                    d = e(d_text(c))
                    if m in t.best(x):
                        d = f"<b>{d}</b>"
                    frac = fraction_text(c)
                    tds.append(f"<td>{d}" + (f"<br><span class='muted'>{e(frac)}</span>" if frac else "") + "</td>")
                tag = " <span class='muted'>(yardstick)</span>" if m in t.yardsticks else ""
                body.append(f"<tr><th>{e(m)}{tag}</th>{''.join(tds)}</tr>")
            parts.append(f"<h3>{e(t.title)}</h3><p class='muted'>{e(t.criterion)}. {e(LEGEND)}; "
                         f"the best d* of each ε in bold.</p><table class='compare'><thead><tr><th>method</th>{head}"
                         f"</tr></thead><tbody>{''.join(body)}</tbody></table><p class='reading'>{e(t.reading)}</p>")
        return "\n".join(parts)

    def to_pandas(self):
        return self.long().to_pandas()

    def __str__(self) -> str:
        return self.render("table")

    def __repr__(self) -> str:
        return self.render("table", width=100)

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_markdown_(self) -> str:
        return self.render("markdown")


def _aligned_pairs(table: Table, width: int | None) -> str:
    """The pivot as aligned text, each method's two lines kept together, cut to ``width``."""
    cells = [[str(v) for v in r] for r in table.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(table.columns)]
    if width is not None:
        widths = fit_widths(widths, [len(c) for c in table.columns], width)
    line = lambda vals: "  ".join(truncate(v, w).ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(table.columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def comparison(store, suite: str | None = None) -> Comparison:
    """The comparison of one suite (or of every suite in the store), read from the leaderboard."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in queries.comparison_rows(store, suite):
        key = (r["suite"], r["model"], r["model_params"], r["dataset"], r["dataset_params"], r["metric"])
        groups.setdefault(key, []).append(r)
    tasks = []
    for key, rs in groups.items():
        epsilons = sorted({r["epsilon"] for r in rs})
        cells = {(r["label"], r["epsilon"]): r for r in rs}
        labels = sorted({r["label"] for r in rs})
        last = len(labels) + 1  # a method without d* at an ε (no rank there) is ordered after those with one
        mean_rank = {m: sum(last if cells[(m, e)]["rank"] is None else cells[(m, e)]["rank"]
                            for e in epsilons if (m, e) in cells) /
                     max(1, sum((m, e) in cells for e in epsilons)) for m in labels}
        methods = sorted(labels, key=lambda m: (mean_rank[m], m))
        first = rs[0]
        task = TaskComparison(
            suite=key[0], model=first["model_label"] or key[1], dataset=first["dataset_label"] or key[3],
            D=max((r["total_params"] or 0) for r in rs) or None, metric=key[5],
            higher_is_better=bool(first["higher_is_better"]), delta=first["delta"], epsilons=epsilons,
            methods=methods, cells=cells, yardsticks=[m for m in methods if any(cells[(m, e)]["yardstick"]
                                                                                  for e in epsilons if (m, e) in cells)])
        task.reading = reading(task)
        tasks.append(task)
    return Comparison(tasks)
