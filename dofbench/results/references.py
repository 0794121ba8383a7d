"""Published reference results: the ``registry/`` TOML files, their schema, and the comparison of
stored measurements with them.

One TOML file per source, each a list of ``[[results]]`` entries validated by
:class:`ReferenceEntry`. The registry is loaded into the store's ``reference_results`` table when
the store is opened for writing and the registry's content hash changed (:meth:`Store.write`). Two
rules are understood:

- ``d_int`` (Li et al. 2018): the smallest d whose mean ``metric`` over seeds exceeds ``fraction``
  × the full-training value of the same metric (``d_int90`` for fraction 0.9). The baseline is the
  mean over the stored full-training baselines of the same model and dataset (trials of a method
  that declares ``baseline``), else the entry's ``baseline``.
- ``d_star`` (Larsen et al. 2022): the smallest d with P_s ≥ 1 − δ at threshold ε of ``metric``
  (the leaderboard's d*).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dofbench.errors import DofbenchError
from dofbench.config.identity import canonical_json
from dofbench.config.schemas import format_validation_error
from dofbench.results import queries
from dofbench.results.table import Table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_REGISTRY = "DOFBENCH_REGISTRY"


class ReferenceEntry(BaseModel):
    """One published number with the exact setting it was measured in."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    id: str = Field(min_length=1, description="Identifier, unique within its file.")
    citation: str = Field(min_length=1, description="Authors, title, venue and year.")
    url: str | None = Field(None, description="Where the paper can be read (arXiv, proceedings).")
    location: str | None = Field(None, description="Where in the paper the number is (table, figure, section).")
    paper_model: str | None = Field(None, description="The model as the paper names it.")
    model: str = Field(min_length=1, description="dofbench model name the entry corresponds to.")
    model_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Model params that must equal the stored model's params for a comparison (a subset).")
    dataset: str = Field(min_length=1, description="dofbench dataset name.")
    dataset_params: dict[str, Any] | None = Field(
        None, description="Dataset params that must equal the stored dataset's params (a subset).")
    dataset_variant: str | None = Field(
        None, description="A variant of the dataset (e.g. shuffled labels); such an entry is compared "
                          "only when dataset_params says how dofbench reproduces it.")
    D: int = Field(gt=0, description="Total parameter count of the published model.")
    method: str = Field(min_length=1, description="dofbench method name the number was measured with (e.g. random-subspace).")
    rule: Literal["d_int", "d_star"] = Field(
        description="Estimator: d_int = smallest d whose mean metric exceeds fraction × the full-training "
                    "value (Li et al.'s d_int90); d_star = smallest d with P_s ≥ 1 − delta at epsilon.")
    metric: str = Field(min_length=1, description="Metric the rule is applied to, e.g. test_acc, best_train_acc.")
    fraction: float | None = Field(None, gt=0, le=1, description="d_int: fraction of the full-training value (0.9).")
    baseline: float | None = Field(None, description="d_int: the published full-training value of the metric.")
    epsilon: float | None = Field(None, description="d_star: the success threshold ε of the metric.")
    delta: float | None = Field(None, gt=0, lt=1, description="d_star: P_s must reach 1 − delta.")
    value: float = Field(gt=0, description="The published training dimension.")
    bound: Literal["equal", "above", "below"] = Field(
        "equal", description="'above' if the paper reports only a lower bound (> value), 'below' an upper bound.")
    verified: bool = Field(
        False, description="true if the value was checked against the paper's text; false if recalled.")
    note: str | None = Field(None, description="Anything a reader should know about the number.")

    @model_validator(mode="after")
    def _rule_fields(self) -> "ReferenceEntry":
        if self.rule == "d_int" and self.fraction is None:
            raise ValueError("rule 'd_int' needs fraction (e.g. 0.9 for d_int90)")
        if self.rule == "d_star" and (self.epsilon is None or self.delta is None):
            raise ValueError("rule 'd_star' needs epsilon and delta")
        return self

    @property
    def rule_label(self) -> str:
        if self.rule == "d_int":
            return f"d_int{round(100 * (self.fraction or 0)):d}"
        return f"d*(eps={self.epsilon:g}, delta={self.delta:g})"


class ReferenceFile(BaseModel):
    """A registry file: the results of one source."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    results: list[ReferenceEntry] = Field(min_length=1, description="The published results of this source.")


def registry_dirs() -> list[Path]:
    """The packaged registry, or the directories named by ``DOFBENCH_REGISTRY`` (os.pathsep-separated)."""
    env = os.environ.get(ENV_REGISTRY)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path(__file__).resolve().parents[1] / "registry"]


def registry_files(dirs: list[Path] | None = None) -> list[Path]:
    files: list[Path] = []
    for d in dirs if dirs is not None else registry_dirs():
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(d.glob("*.toml")))
        else:
            raise DofbenchError(f"{ENV_REGISTRY}: no registry file or directory at {d}")
    return files


def load_file(path: Path) -> list[ReferenceEntry]:
    """Parse and validate one registry file; errors name the file, the entry and the field."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise DofbenchError(f"cannot read registry file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DofbenchError(f"{path}: malformed TOML: {exc}") from None
    try:
        parsed = ReferenceFile.model_validate(raw)
    except ValidationError as exc:
        raise DofbenchError(f"{path}: {_entry_error(exc, raw)}") from None
    seen: set[str] = set()
    for e in parsed.results:
        if e.id in seen:
            raise DofbenchError(f"{path}: results entry id {e.id!r} appears twice; ids must be unique in a file")
        seen.add(e.id)
    return list(parsed.results)


def _entry_error(exc: ValidationError, raw: dict[str, Any]) -> str:
    """'results[2] (id 'x').field: problem' for the first validation error."""
    loc = exc.errors(include_url=False)[0]["loc"]
    model = ReferenceEntry if len(loc) >= 2 and loc[0] == "results" else ReferenceFile
    msg = format_validation_error(exc, model=ReferenceFile)
    if len(loc) >= 2 and loc[0] == "results" and isinstance(loc[1], int):
        entries = raw.get("results") or []
        eid = entries[loc[1]].get("id") if loc[1] < len(entries) and isinstance(entries[loc[1]], dict) else None
        if eid:
            msg = msg.replace(f"results[{loc[1]}]", f"results[{loc[1]}] (id {eid!r})", 1)
        if "unknown key" in msg and "allowed keys" not in msg:
            msg += "; allowed keys: " + ", ".join(model.model_fields)
    return msg


def load_registry(dirs: list[Path] | None = None) -> list[tuple[str, ReferenceEntry]]:
    """Every entry of every registry file, as (source, entry) with source = the file's stem."""
    return [(f.stem, e) for f in registry_files(dirs) for e in load_file(f)]


def registry_hash(dirs: list[Path] | None = None) -> str:
    h = hashlib.blake2b(digest_size=16)
    for f in registry_files(dirs):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


# ------------------------------------------------------------------------------ the store
COLUMNS = queries.REFERENCE_COLUMNS


def registry_rows(dirs: list[Path] | None = None) -> list[list[Any]]:
    """The registry as rows of ``reference_results`` (columns :data:`COLUMNS`)."""
    rows = []
    for position, (source, e) in enumerate(load_registry(dirs)):
        d = e.model_dump()
        d.update(source=source, position=position, rule_label=e.rule_label, model_params=canonical_json(e.model_params),
                 dataset_params=None if e.dataset_params is None else canonical_json(e.dataset_params))
        rows.append([d[c] for c in COLUMNS])
    return rows


# ------------------------------------------------------------------------------ comparison
COMPARISON_COLUMNS = ["suite", "model", "dataset", "method", "rule", "metric", "D", "published_D",
                      "measured", "published", "ratio", "n_seeds", "max_d", "citation", "location", "verified"]


def _subset(wanted: dict[str, Any], stored_json: str | None) -> bool:
    """True if every key of ``wanted`` has the same value in the stored params JSON."""
    try:
        stored = json.loads(stored_json) if stored_json else {}
    except ValueError:
        return False
    return all(k in stored and canonical_json(stored[k]) == canonical_json(v) for k, v in wanted.items())


def _matches(ref: dict[str, Any], model_params: str | None, dataset_params: str | None) -> bool:
    if not _subset(json.loads(ref["model_params"] or "{}"), model_params):
        return False
    if ref["dataset_params"] is not None:
        return _subset(json.loads(ref["dataset_params"]), dataset_params)
    return ref["dataset_variant"] is None


def compare(con, suite: str | None = None) -> Table:
    """Measured next to published, where model, dataset, method and rule match, with the ratio
    measured / published. ``con`` is a (read-only) store connection."""
    out: list[tuple] = []
    for ref in queries.reference_rows(con):
        measured = _measure_d_star(con, ref, suite) if ref["rule"] == "d_star" else _measure_d_int(con, ref, suite)
        for m in measured:
            ratio = None if m["measured"] is None else m["measured"] / ref["value"]
            published = _number(ref["value"]) if ref["bound"] == "equal" else \
                f"{'>' if ref['bound'] == 'above' else '<'}{_number(ref['value'])}"
            out.append((m["suite"], ref["model"], ref["dataset"], m["label"], ref["rule_label"], ref["metric"],
                        m["D"], ref["D"], m["measured"], published, ratio, m["n_seeds"], m["max_d"],
                        ref["citation"], ref["location"], ref["verified"]))
    out.sort(key=lambda r: (r[0], r[1], r[2], r[3], r[4]))
    return Table(list(COMPARISON_COLUMNS), out)


def _measure_d_star(con, ref: dict[str, Any], suite: str | None) -> list[dict[str, Any]]:
    found = queries.d_star_at(con, ref["model"], ref["dataset"], ref["method"], ref["metric"], ref["epsilon"],
                              ref["delta"], suite)
    return [{"suite": r["suite"], "label": r["label"], "measured": r["d_star"], "D": r["total_params"],
             "n_seeds": r["n_seeds"], "max_d": r["max_d"]}
            for r in found if _matches(ref, r["model_params"], r["dataset_params"])]


def _measure_d_int(con, ref: dict[str, Any], suite: str | None) -> list[dict[str, Any]]:
    """Li et al.'s estimator on stored trials: smallest d whose mean metric > fraction × baseline,
    the baseline being the suite's own full-training trials, else the entry's published one."""
    baselines = {(b["model_params"], b["dataset_params"]): b["mean"]
                 for b in queries.baseline_means(con, ref["model"], ref["dataset"], ref["metric"])
                 if b["mean"] is not None}
    groups: dict[tuple, dict[str, Any]] = {}
    for r in queries.mean_metric_by_d(con, ref["model"], ref["dataset"], ref["method"], ref["metric"], suite):
        mp, dp = r["model_params"], r["dataset_params"]
        if not _matches(ref, mp, dp) or r["mean"] is None:
            continue
        g = groups.setdefault((r["suite"], mp, dp, r["params"]), {
            "suite": r["suite"], "label": r["label"], "D": r["total_params"], "points": [],
            "baseline": baselines.get((mp, dp), ref["baseline"])})
        g["points"].append((r["d"], r["mean"], r["n"]))
    out = []
    for g in groups.values():
        pts = sorted(g["points"])
        measured = None
        if g["baseline"] is not None:
            target = ref["fraction"] * g["baseline"]
            measured = next((d for d, mean, _ in pts if mean > target), None)  # as the leaderboard's d_int90
        n_at = next((n for d, _, n in pts if d == measured), min(n for _, _, n in pts))
        out.append({"suite": g["suite"], "label": g["label"], "measured": measured, "D": g["D"],
                    "n_seeds": n_at, "max_d": pts[-1][0]})
    return out


def references_table(con) -> Table:
    """Every loaded reference (for reports)."""
    cols = ("source", "model", "dataset", "dataset_variant", "D", "method", "rule_label", "metric", "value", "bound",
            "verified", "citation", "location", "note")
    found = [tuple(_number(r[c]) for c in cols) for r in queries.reference_rows(con, cols)]
    return Table(["source", "model", "dataset", "variant", "D", "method", "rule", "metric", "value", "bound",
                  "verified", "citation", "location", "note"], found)


def _number(v: Any) -> Any:
    """Integral floats as ints (published dimensions read better as 500000 than 5e+05)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v
