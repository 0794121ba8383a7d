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
import warnings
from pathlib import Path
from typing import Any, Iterable

from dofbench.config.identity import identity_label
from dofbench.config.runtime import Runtime
from dofbench.config.suites import default_config_path, load_suite_file
from dofbench.engine.flat import count_params
from dofbench.errors import DofbenchError
from dofbench.results import queries
from dofbench.results.references import load_registry
from dofbench.results.store import Store
from dofbench.results.table import Table
from dofbench.run.host import COMPONENT_HOOKS, Host
from dofbench.run.resolve import resolve, resolve_suite
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
        # Everything that can be known before training is checked before anything is stored: the
        # options, the device, the plugins, every suite, the store file, every dataset (downloaded now).
        budget = Budget.of(max_trials, time_budget)
        options = dict(executor_options or {})
        if scheduler:
            if executor not in ("auto", "dask"):
                raise DofbenchError(f"--scheduler applies to --executor dask, not {executor!r}")
            options["scheduler"] = scheduler
        device = resolve_device(self.runtime.device).type
        self.check_plugins()
        resolved = self.resolve(suites)
        self.store.check_writable()
        load_registry()  # the published references the store loads: a bad registry file fails here
        for suite in resolved:
            preflight(suite, self.host, self.runtime)
        ex = executor_for(executor, self.host, self.runtime, workers, options)
        sched = Scheduler(self.store, ex, force=force, retry_failed=retry_failed, budget=budget, progress=progress,
                          source=str(self.config or default_config_path()))
        out = []
        try:
            for suite in resolved:
                self.store.record_statistics(suite.name, suite.spec.search.strategy, suite.spec.search.confidence,
                                             seeds=len(suite.spec.seed_list()), min_seeds=suite.spec.threshold.min_seeds)
                summary = sched.run(suite, strategy_for(suite, self.host, device))
                out.append(summary)
                if summary.stopped:
                    break
        finally:
            ex.close()
        return out

    def check_plugins(self) -> None:
        """A plugin named by --plugin or DOFBENCH_PLUGINS that failed to load is an error here (its
        components would be missing from the run); a broken installed one (an entry point) only
        warns, since the run may not need it."""
        for rec in self.host.failures:
            if rec.source in ("--plugin", "DOFBENCH_PLUGINS"):
                raise DofbenchError(f"{rec.source} {rec.module}: the plugin failed to load: {rec.error}")
            warnings.warn(f"plugin {rec.name} ({rec.source}) failed to load: {rec.error}", stacklevel=2)

    def plan(self, suites: Iterable[str], *, force: bool = False) -> Table:
        """What ``run`` would do, without running or writing anything (``--dry-run``): per task of
        each suite, its D, the methods, dims and seeds, its trials and how many of them would run.
        Checks what ``run`` checks first (device, plugins, every suite)."""
        resolve_device(self.runtime.device)
        self.check_plugins()
        rows = []
        for suite in self.resolve(suites):
            ids = list(dict.fromkeys(t.trial_id for t in suite.trials))
            done = set() if force else self.store.done_ids(ids)
            for task in suite.tasks:
                mine = list(dict.fromkeys(t.trial_id for t in suite.trials
                                          if (t.model, t.dataset) == (task.model, task.dataset)))
                rows.append((suite.name, _label(task.model.name, task.model_identity),
                             _label(task.dataset.name, task.dataset_identity), task.total_params,
                             len(suite.spec.methods), len(suite.spec.dims), len(suite.spec.seed_list()),
                             len(mine), len([t for t in mine if t not in done])))
        return Table(["suite", "model", "dataset", "D", "methods", "dims", "seeds", "trials", "to_run"], rows)

    def validate(self, config: str | os.PathLike | None = None) -> tuple[Table, list[str]]:
        """Validate every suite of a file (default: the session's config) without running: the
        valid suites, and every problem of the others (one line each; one bad suite does not hide
        the rest)."""
        path = config or self.config
        self.check_plugins()
        suite_file = load_suite_file(path)
        rows, problems = [], []
        for name in sorted(suite_file.suites):
            try:
                s = resolve_suite(self.host, name, suite_file.suites[name])
            except DofbenchError as exc:
                problems.extend(getattr(exc, "problems", None) or [str(exc)])
                continue
            rows.append((name, len(set(t.trial_id for t in s.trials)),
                         ", ".join(f"{t.model.name}/{t.dataset.name} D={t.total_params}" for t in s.tasks)))
        return Table(["suite", "trials", "tasks"], rows), problems

    def suites(self, config: str | os.PathLike | None = None) -> Table:
        """The suites of a file (default: the session's config, else the packaged benchmarks.toml)
        with their descriptions, trial counts and, where the store has them, the trials stored."""
        path = config or self.config
        suite_file = load_suite_file(path)
        stored = {}
        if self.store.path.exists():
            stored = queries.suite_trial_counts(self.store)
        rows = []
        for name in sorted(suite_file.suites):
            spec = suite_file.suites[name]
            try:
                trials: Any = len(set(t.trial_id for t in resolve([name], path, self.host)[0].trials))
            except DofbenchError as exc:  # one broken suite must not hide the others
                trials = f"invalid: {exc}"
            done = stored.get(name)
            rows.append((name, trials, done[1] if done else None, spec.description))
        return Table(["suite", "trials", "stored", "description"], rows)

    # ------------------------------------------------------------------ reading
    def query(self, sql: str, params: list[Any] | None = None) -> Table:
        """Read-only SQL on the store; a Table (``.to_pandas()``, ``.records()``; shows as HTML in a
        notebook). Every column the query names is kept, empty or not."""
        cols, rows = self.store.query(sql, params)
        return Table(cols, rows, hide_empty=False)

    def compare(self, suite: str | None = None):
        """The methods × ε table of d* (with its interval and d*/D) per task and the reading: how
        many times fewer dimensions the best method needs than the yardstick (random subspaces).
        A :class:`~dofbench.results.compare.Comparison` (``.render()``, ``.to_pandas()``, HTML in a
        notebook)."""
        from dofbench.results.compare import comparison

        self._check_suite(suite)
        return comparison(self.store, suite)

    def _check_suite(self, suite: str | None) -> None:
        if suite is None:
            return
        stored = queries.stored_suite_list(self.store)
        if suite not in stored:
            raise DofbenchError(f"--suite {suite!r}: no such suite in {self.store.path}; stored: "
                                f"{', '.join(stored) or 'none'}")

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

    def plot(self, kinds: str | Iterable[str] = "all", suite: str | None = None,
             out_dir: str | os.PathLike | None = None, formats: tuple[str, ...] = ("png", "svg"),
             skip_empty: bool | None = None):
        """Draw plot kinds (``dofbench.report.plots.PLOT_KINDS``, or ``"all"``: those with data) from
        the store. Each :class:`~dofbench.report.plots.Plot` holds its matplotlib ``figure``, the data
        drawn (``panels``) and, with ``out_dir``, the files written; it displays inline in a notebook
        and ``plot.save(path)`` writes it. One kind given as a string returns one Plot, otherwise a
        list (``Plots``, which shows every figure)."""
        from dofbench.report.plots import PLOT_KINDS, render

        single = isinstance(kinds, str) and kinds != "all"
        wanted = list(PLOT_KINDS) if kinds == "all" else [kinds] if isinstance(kinds, str) else list(kinds)
        skip = (kinds == "all") if skip_empty is None else skip_empty
        plots = render(self.store, wanted, suite, out_dir, formats, skip_empty=skip)
        return plots[0] if single and len(plots) == 1 else plots

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

    def trial(self, trial_id: str) -> dict[str, Any]:
        """The stored trial whose id is (or starts with) ``trial_id``: its spec, status, error and
        traceback, metrics, what the method resolved and what ran it."""
        with self.store.read() as con:
            found = queries.trials_by_prefix(con, trial_id)
        if not found:
            raise DofbenchError(f"trial {trial_id!r}: no stored trial has this id (or starts with it) in {self.store.path}")
        if len(found) > 1 and found[0]["trial_id"] != trial_id:
            raise DofbenchError(f"trial {trial_id!r}: {len(found)}{'+' if len(found) == 5 else ''} stored trials start "
                                f"with it ({', '.join(r['trial_id'][:12] for r in found)}); give more of the id")
        row = found[0]
        for col in ("spec", "metrics", "method_info", "versions", "train"):
            row[col] = json.loads(row[col]) if row.get(col) else None
        return row

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


def _label(name: str, identity: dict[str, Any]) -> str:
    return identity_label(name, identity)


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


def compare(suite: str | None = None, db=None, **kwargs):
    return Session(db, **kwargs).compare(suite)


def leaderboard(suite: str | None = None, db=None, **kwargs) -> Table:
    return Session(db, **kwargs).leaderboard(suite)


def validate(config=None, **kwargs) -> tuple[Table, list[str]]:
    return Session(config=config, **kwargs).validate()


def plugins(**kwargs) -> list[dict[str, Any]]:
    return Session(**kwargs).plugins()


def list_components(kind: str, **kwargs) -> Table:
    return Session(**kwargs).list(kind)


def show_component(kind: str, name: str, **kwargs) -> dict[str, Any]:
    return Session(**kwargs).show(kind, name)
