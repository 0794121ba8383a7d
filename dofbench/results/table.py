"""A small result table (columns + rows) with the output formats of the CLI."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

FORMATS = ("table", "markdown", "csv", "json")


@dataclass
class Table:
    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def render(self, fmt: str = "table") -> str:
        if fmt == "json":
            return json.dumps(self.records(), indent=2, default=_json_default)
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(self.columns)
            w.writerows([[cell_text(v) for v in r] for r in self.rows])
            return buf.getvalue().rstrip("\n")
        cells = [[cell_text(v) for v in r] for r in self.rows]
        if fmt == "markdown":
            head = "| " + " | ".join(self.columns) + " |"
            sep = "|" + "|".join("---" for _ in self.columns) + "|"
            return "\n".join([head, sep] + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells])
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
        out = [line(self.columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render("table")

    def _repr_markdown_(self) -> str:  # notebooks
        return self.render("markdown")


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
