"""The Python API: everything the CLI does, callable from a notebook, writing to the same store.

>>> import dofbench
>>> s = dofbench.Session(db="results.duckdb")
>>> s.run(["quick"])
>>> s.leaderboard(suite="quick")
>>> s.query("select d, epsilon, p_success from success order by epsilon, d")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from dofbench.config.runtime import Runtime
from dofbench.config.suites import default_config_path, load_suite_file
from dofbench.engine.flat import count_params
from dofbench.errors import DofbenchError
from dofbench.results import queries
from dofbench.results.store import Store
from dofbench.results.table import Table
from dofbench.run.host import COMPONENT_HOOKS, Host
from dofbench.run.resolve import resolve
from dofbench.engine.worker import resolve_device
from dofbench.run.scheduler import Budget, Scheduler, SuiteSummary, executor_for, preflight, strategy_for


class Session:
    """A plugin host, a store and a runtime: the unit of work of one CLI call or notebook."""

    def __init__(self, db: str | os.PathLike | None = None, *, plugins: Iterable[str] = (),
                 config: str | os.PathLike | None = None, device: str = "auto",
                 cache_dir: str | None = None, data_root: str | None = None, download: bool = False,
                 use_env: bool = True, host: Host | None = None):
        self.host = host if host is not None else Host(list(plugins), use_env=use_env)
        self.store = Store(db)
        self.config = config
        self.runtime = Runtime(device=device, plugins=self.host.extra_specs, cache_dir=cache_dir,
                               data_root=data_root or os.environ.get("DOFBENCH_DATA"), download=download)

    # ------------------------------------------------------------------ running
    def resolve(self, suites: Iterable[str]):
        return resolve(list(suites), self.config, self.host)

    def run(self, suites: Iterable[str], *, force: bool = False, retry_failed: bool = False,
            executor: str = "auto", workers: int | None = None, progress: bool = False,
            executor_options: dict[str, Any] | None = None, scheduler: str | None = None,
            max_trials: int | None = None, time_budget: float | None = None) -> list[SuiteSummary]:
        """Run suites, skipping trials already stored (``force`` reruns them).

        ``executor``: auto (process pool with more than one core, local otherwise or when plugins
        were registered at run time), local, process, dask (``scheduler`` address, or
        ``executor_options={"client": client}`` for an existing dask Client, e.g. from
        dask-jobqueue). ``max_trials`` / ``time_budget`` (seconds) stop each suite from starting
        more trials; a later run finishes the rest."""
        budget = Budget.of(max_trials, time_budget)
        resolved = self.resolve(suites)
        options = dict(executor_options or {})
        if scheduler:
            if executor not in ("auto", "dask"):
                raise DofbenchError(f"--scheduler applies to --executor dask, not {executor!r}")
            options["scheduler"] = scheduler
        ex = executor_for(executor, self.host, self.runtime, workers, options)
        sched = Scheduler(self.store, ex, force=force, retry_failed=retry_failed, budget=budget, progress=progress,
                          source=str(self.config or default_config_path()))
        device = resolve_device(self.runtime.device).type
        out = []
        try:
            for suite in resolved:
                preflight(suite, self.host, self.runtime)
                self.store.record_statistics(suite.name, suite.spec.search.strategy, suite.spec.search.confidence,
                                             seeds=len(suite.spec.seed_list()), min_seeds=suite.spec.threshold.min_seeds)
                summary = sched.run(suite, strategy_for(suite, self.host, device))
                out.append(summary)
                if summary.interrupted:
                    break
        finally:
            ex.close()
        return out

    def plan(self, suites: Iterable[str], *, force: bool = False) -> Table:
        """What ``run`` would do, without running or writing anything (``--dry-run``)."""
        rows = []
        for suite in self.resolve(suites):
            ids = list(dict.fromkeys(t.trial_id for t in suite.trials))
            done = set() if force else self.store.done_ids(ids)
            for task in suite.tasks:
                rows.append((suite.name, task.model.name, task.dataset.name, task.total_params,
                             len(suite.spec.methods), len(suite.spec.dims), len(suite.spec.seed_list())))
            rows.append((suite.name, "(all)", "", None, None, len(ids), len(ids) - len(done & set(ids))))
        return Table(["suite", "model", "dataset", "D", "methods", "dims|trials", "seeds|to_run"], rows)

    def validate(self, config: str | os.PathLike | None = None) -> Table:
        """Validate every suite of a file (default: the session's config) without running."""
        path = config or self.config
        suite_file = load_suite_file(path)
        rows = []
        for name in sorted(suite_file.suites):
            s = resolve([name], path, self.host)[0]
            rows.append((name, len(set(t.trial_id for t in s.trials)),
                         ", ".join(f"{t.model.name}/{t.dataset.name} D={t.total_params}" for t in s.tasks)))
        return Table(["suite", "trials", "tasks"], rows)

    # ------------------------------------------------------------------ reading
    def query(self, sql: str, params: list[Any] | None = None) -> Table:
        cols, rows = self.store.query(sql, params)
        return Table(cols, rows)

    def leaderboard(self, suite: str | None = None) -> Table:
        """d* per method, ranked within each task and ε."""
        return queries.leaderboard(self.store, suite)

    def success(self, suite: str | None = None) -> Table:
        """P_s per method, d, metric and ε."""
        return queries.success(self.store, suite)

    def references(self, suite: str | None = None) -> Table:
        """Measured next to published (registry/) where model, dataset, method and rule match,
        with the ratio measured / published."""
        from dofbench.results.references import compare

        with self.store.read() as con:
            return compare(con, suite)

    def plot(self, kinds: Iterable[str], suite: str | None = None, out_dir: str | os.PathLike = "plots",
             formats: tuple[str, ...] = ("png", "svg"), skip_empty: bool = False) -> list:
        """Draw plot kinds (dofbench.report.plots.PLOT_KINDS) from the store into ``out_dir``; each returned
        Plot carries the files written and the data drawn."""
        from dofbench.report.plots import render

        return render(self.store, list(kinds), suite, out_dir, formats, skip_empty=skip_empty)

    def report(self, suite: str, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write report.html (self-contained) and report.md for a suite; return their paths."""
        from dofbench.report.report import write_report

        return write_report(self.store, suite, out_dir)

    # ------------------------------------------------------------------ components
    def plugins(self) -> list[dict[str, Any]]:
        _ = self.host.registry
        return [r.as_dict() for r in self.host.records]

    def list(self, kind: str, dataset: str | None = None) -> Table:
        kind = _kind(kind)
        rows = []
        info = None
        if kind == "model" and dataset:
            dcomp = self.host.get("dataset", dataset, where="--dataset")
            info = dcomp.info(dcomp.parse_params({}))
        for comp, rec in self.host.components(kind):
            extra = ""
            if kind == "dataset":
                try:
                    i = comp.info(comp.parse_params({}))
                    extra = f"input {tuple(i.input_shape)}, {i.num_classes} classes, {i.n_train}/{i.n_test} train/test; {i.source}"
                except Exception as exc:  # describing must not fail the listing
                    extra = f"(cannot describe: {exc})"
            elif kind == "model" and info is not None:
                try:
                    extra = f"D={count_params(comp.build(comp.parse_params({}), info))} on {dataset}"
                except Exception as exc:
                    extra = f"(cannot build for {dataset}: {' '.join(str(exc).split())})"
            rows.append((getattr(comp, "name"), getattr(comp, "description", ""), extra, rec.name))
        return Table(["name", "description", "details", "plugin"], rows)

    def show(self, kind: str, name: str) -> dict[str, Any]:
        kind = _kind(kind)
        comp = self.host.get(kind, name)
        rec = self.host.source_of(kind, name)
        return {"kind": kind, "name": name, "description": getattr(comp, "description", ""),
                "plugin": rec.name, "source": rec.source, "params": params_help(comp)}


def params_help(comp) -> list[dict[str, Any]]:
    """Name, type, default and description of each parameter, from the pydantic model."""
    params_model = getattr(comp, "Params", None)
    if params_model is None:
        return []
    schema = params_model.model_json_schema()
    out = []
    for fname, field in params_model.model_fields.items():
        prop = schema.get("properties", {}).get(fname, {})
        out.append({"name": fname, "type": _type_str(prop),
                    "default": None if field.is_required() else _jsonable(field.get_default(call_default_factory=True)),
                    "required": field.is_required(), "description": field.description or ""})
    return out


def _type_str(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " | ".join(_type_str(p) for p in prop["anyOf"])
    t = prop.get("type", "any")
    if t == "array":
        return f"list[{_type_str(prop.get('items', {}))}]"
    bounds = [f"{k}={prop[k]}" for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum") if k in prop]
    return t + (f" ({', '.join(bounds)})" if bounds else "")


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def _kind(kind: str) -> str:
    k = kind.rstrip("s") if kind.endswith("s") else kind
    if k not in COMPONENT_HOOKS:
        raise DofbenchError(f"unknown kind {kind!r}; allowed: {', '.join(k + 's' for k in COMPONENT_HOOKS)}")
    return k


# module-level conveniences -------------------------------------------------------------------
def run(suites: Iterable[str], db=None, **kwargs) -> list[SuiteSummary]:
    run_kw = {k: kwargs.pop(k) for k in ("force", "retry_failed", "executor", "workers", "progress",
                                         "executor_options", "scheduler", "max_trials", "time_budget")
              if k in kwargs}
    return Session(db, **kwargs).run(suites, **run_kw)


def query(sql: str, db=None, **kwargs) -> Table:
    return Session(db, **kwargs).query(sql)


def leaderboard(suite: str | None = None, db=None, **kwargs) -> Table:
    return Session(db, **kwargs).leaderboard(suite)


def validate(config=None, **kwargs) -> Table:
    return Session(config=config, **kwargs).validate()


def plugins(**kwargs) -> list[dict[str, Any]]:
    return Session(**kwargs).plugins()


def list_components(kind: str, **kwargs) -> Table:
    return Session(**kwargs).list(kind)


def show_component(kind: str, name: str, **kwargs) -> dict[str, Any]:
    return Session(**kwargs).show(kind, name)
