"""A small result table (columns + rows) with the output formats of the CLI and of notebooks.

Rendered for people (``table``, ``markdown``, HTML), a table leaves out the columns that are empty
in every row (``hide_empty``, on by default; a query's own columns are always shown). Given a
``width`` that the aligned text would exceed, the columns with one value in every row move to a line
above the table (``suite: quick · metric: best_train_acc``) and the longest text cells are cut with
``…`` (numbers never are). The machine formats (``csv``, ``json``) and :meth:`Table.to_pandas` keep
every column and every character.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from dofbench.errors import DofbenchError

FORMATS = ("table", "markdown", "csv", "json")
HTML_ROWS = 60  # rows a notebook shows before "… N more rows"
REPR_ROWS = 20  # rows repr() shows


@dataclass(repr=False)
class Table:
    columns: list[str]
    rows: list[tuple]
    hide_empty: bool = True  # leave columns that are empty in every row out of rendered tables

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def shown(self) -> "Table":
        """The table as rendered for people: without the columns that are empty in every row
        (unless ``hide_empty`` is off or the table has no rows)."""
        if not self.hide_empty or not self.rows:
            return self
        keep = [i for i in range(len(self.columns)) if any(r[i] is not None for r in self.rows)]
        if len(keep) == len(self.columns):
            return self
        return Table([self.columns[i] for i in keep], [tuple(r[i] for i in keep) for r in self.rows], False)

    def render(self, fmt: str = "table", width: int | None = None) -> str:
        """``table`` (aligned text; with ``width``, cells are truncated with … to fit that many
        columns), ``markdown``, ``csv`` or ``json``."""
        if fmt == "json":
            return json.dumps(self.records(), indent=2, default=_json_default)
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(self.columns)
            w.writerows([[cell_text(v) for v in r] for r in self.rows])
            return buf.getvalue().rstrip("\n")
        if fmt not in FORMATS:
            raise DofbenchError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
        t = self.shown()
        cells = [[cell_text(v) for v in r] for r in t.rows]
        if fmt == "markdown":
            esc = lambda c: c.replace("|", "\\|")  # noqa: E731
            head = "| " + " | ".join(esc(c) for c in t.columns) + " |"
            sep = "|" + "|".join("---" for _ in t.columns) + "|"
            return "\n".join([head, sep] + ["| " + " | ".join(esc(c) for c in r) + " |" for r in cells])
        return _aligned(t.columns, cells, width, numeric=[_is_numeric(t.column(c)) for c in t.columns])

    def to_html(self, max_rows: int | None = None, lift_constant: bool = False) -> str:
        """An HTML ``<table>`` (escaped; empty columns left out), at most ``max_rows`` rows; with
        ``lift_constant``, the columns with one value in every row are a line above it."""
        t = self.shown()
        if not t.rows:
            return '<p class="muted">no rows</p>'
        lifted = ""
        if lift_constant and len(t.rows) > 1:
            same = [i for i in range(len(t.columns)) if len({cell_text(r[i]) for r in t.rows}) == 1]
            if same and len(same) < len(t.columns):
                lifted = ('<p class="lifted">' + " · ".join(
                    f"{html.escape(t.columns[i])}: <b>{html.escape(cell_text(t.rows[0][i]))}</b>" for i in same) + "</p>")
                keep = [i for i in range(len(t.columns)) if i not in same]
                t = Table([t.columns[i] for i in keep], [tuple(r[i] for i in keep) for r in t.rows], False)
        rows = t.rows if max_rows is None else t.rows[:max_rows]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in r) + "</tr>" for r in rows)
        more = (f"<p>… {len(t.rows) - len(rows)} more rows (<code>.to_pandas()</code> or "
                f"<code>.records()</code> for all)</p>" if len(rows) < len(t.rows) else "")
        return f"{lifted}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"

    def to_pandas(self):
        """A pandas DataFrame of every column and row (needs pandas: ``pip install 'dofbench[notebook]'``)."""
        try:
            import pandas as pd
        except ImportError:
            raise DofbenchError("Table.to_pandas needs pandas, which is not installed; "
                                "pip install 'dofbench[notebook]' (or pandas)") from None
        return pd.DataFrame.from_records([tuple(r) for r in self.rows], columns=list(self.columns))

    def __str__(self) -> str:
        return self.render("table")

    def __repr__(self) -> str:  # a console: the first rows, cut to 100 columns
        head = Table(self.columns, self.rows[:REPR_ROWS], self.hide_empty).render("table", width=100)
        more = f"\n… {len(self.rows) - REPR_ROWS} more rows" if len(self.rows) > REPR_ROWS else ""
        return f"<Table: {len(self.rows)} rows × {len(self.columns)} columns>\n{head}{more}"

    def _repr_html_(self) -> str:  # notebooks
        return self.to_html(max_rows=HTML_ROWS)

    def _repr_markdown_(self) -> str:
        return self.render("markdown")


def _is_numeric(values: list[Any]) -> bool:
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)


def _aligned(columns: list[str], cells: list[list[str]], width: int | None,
             numeric: list[bool] | None = None) -> str:
    numeric = numeric or [False] * len(columns)
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    head: list[str] = []
    if width is not None and sum(widths) + 2 * (len(widths) - 1) > width and len(cells) > 1:
        same = [i for i in range(len(columns)) if len({r[i] for r in cells}) == 1 and len(columns) > 1]
        if same and len(same) < len(columns):
            head = _wrap([f"{columns[i]}: {cells[0][i]}" for i in same], width)
            keep = [i for i in range(len(columns)) if i not in same]
            columns, numeric = [columns[i] for i in keep], [numeric[i] for i in keep]
            cells, widths = [[r[i] for i in keep] for r in cells], [widths[i] for i in keep]
    if width is not None:
        floors = [w if num else None for w, num in zip(widths, numeric)]  # numbers keep their width
        widths = fit_widths(widths, [len(c) for c in columns], width, floors=floors)
    line = lambda vals: "  ".join(truncate(v, w).ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    out = head + [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out)


def _wrap(items: list[str], width: int, sep: str = " · ") -> list[str]:
    """``items`` joined by ``sep`` into lines of at most ``width`` characters (an item longer than
    that is cut)."""
    lines: list[str] = []
    for item in (truncate(i, width) for i in items):
        if lines and len(lines[-1]) + len(sep) + len(item) <= width:
            lines[-1] += sep + item
        else:
            lines.append(item)
    return lines


def fit_widths(widths: list[int], headers: list[int], width: int, gap: int = 2,
               floors: list[int | None] | None = None) -> list[int]:
    """Column widths that fit ``width`` characters (``gap`` between columns): the widest column
    gives a character until the table fits or every column is at its floor (``floors[i]`` where
    given, else its header's length between 8 and 12 characters)."""
    out = list(widths)
    given = floors or [None] * len(widths)
    floors = [f if f is not None else min(w, max(8, min(h, 12))) for w, h, f in zip(widths, headers, given)]
    excess = sum(out) + gap * (len(out) - 1) - width
    while excess > 0:
        i = max(range(len(out)), key=lambda j: (out[j] - floors[j], out[j]))
        if out[i] <= floors[i]:
            break
        out[i] -= 1
        excess -= 1
    return out


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one ``…`` when cut."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def cell_text(v: Any) -> str:
    """How a value is shown in a rendered table (None → empty, floats to 4 significant digits, or
    to one decimal from 10^4 to 10^7, where 4 digits would hide a w² of 14875 as 1.487e+04)."""
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if 1e4 <= abs(v) < 1e7:
            return f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


def _json_default(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
