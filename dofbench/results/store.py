"""The DuckDB results store: the contract with users.

Only the driver writes, through short write connections: each finished trial is committed on its
own, so an interrupted run loses at most the trials in flight. Readers (``query``,
``leaderboard``, plots) open the file read-only and retry while a writer holds it. Schema changes
are numbered migrations; the views ship with them.
"""

from __future__ import annotations

import json
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb

from dofbench.errors import DofbenchError
from dofbench.results.stats import z_value
from dofbench.config.identity import canonical_json

ENV_DB = "DOFBENCH_DB"
DEFAULT_DB = "dofbench.duckdb"

# The stable columns of `trials` filled from the metrics dict (the rest of the metrics stay in
# the `metrics` JSON column).
METRIC_COLUMNS = ("train_loss", "train_acc", "test_loss", "test_acc",
                  "best_train_loss", "best_train_acc", "best_test_loss", "best_test_acc")


def default_db_path(db: str | os.PathLike | None = None) -> Path:
    return Path(db or os.environ.get(ENV_DB) or DEFAULT_DB)


# ----------------------------------------------------------------------------------- migrations
def _m001_core(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
    CREATE TABLE trials (
        trial_id VARCHAR PRIMARY KEY,
        suite VARCHAR,               -- suite that last ran the trial (membership: suite_trials)
        model VARCHAR, model_params VARCHAR,
        dataset VARCHAR, dataset_params VARCHAR,
        method VARCHAR, params VARCHAR,
        label VARCHAR,               -- method name with its non-default params, for display
        d INTEGER, d_used INTEGER, total_params BIGINT, seed INTEGER,
        status VARCHAR CHECK (status IN ('ok', 'failed', 'diverged')),
        error VARCHAR,
        train_loss DOUBLE, train_acc DOUBLE, test_loss DOUBLE, test_acc DOUBLE,
        best_train_loss DOUBLE, best_train_acc DOUBLE, best_test_loss DOUBLE, best_test_acc DOUBLE,
        metrics VARCHAR,             -- JSON: every final and best metric value
        steps INTEGER, wall_s DOUBLE, device VARCHAR,
        method_info VARCHAR,         -- JSON: what the method resolved (e.g. the projection used)
        train VARCHAR,               -- JSON: the training configuration
        spec VARCHAR,                -- JSON: the fully resolved trial spec (reproduce from this)
        versions VARCHAR,            -- JSON: dofbench, torch, numpy, python (, cuda)
        started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ
    )""")
    con.execute("""
    CREATE TABLE evals (
        trial_id VARCHAR, step INTEGER, split VARCHAR, metric VARCHAR, value DOUBLE
    )""")
    con.execute("""
    CREATE TABLE suites (
        suite VARCHAR PRIMARY KEY, description VARCHAR, spec VARCHAR, source VARCHAR,
        updated_at TIMESTAMPTZ
    )""")
    con.execute("CREATE TABLE suite_trials (suite VARCHAR, trial_id VARCHAR, PRIMARY KEY (suite, trial_id))")
    con.execute("""
    CREATE TABLE suite_thresholds (
        suite VARCHAR, metric VARCHAR, epsilon DOUBLE, delta DOUBLE, higher_is_better BOOLEAN
    )""")
    _views_v1(con)


def _views_v1(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
    CREATE OR REPLACE VIEW trial_values AS
    SELECT st.suite, t.trial_id, t.model, t.model_params, t.dataset, t.dataset_params, t.method,
           t.params, t.label, t.d, t.total_params, t.seed, t.status,
           th.metric, th.epsilon, th.delta, th.higher_is_better,
           TRY_CAST(json_extract_string(t.metrics, '$."' || th.metric || '"') AS DOUBLE) AS value
    FROM suite_trials st
    JOIN trials t ON t.trial_id = st.trial_id
    JOIN suite_thresholds th ON th.suite = st.suite
    WHERE t.status IN ('ok', 'diverged')   -- failed trials are no evidence either way
    """)
    con.execute("""
    CREATE OR REPLACE VIEW success AS
    SELECT suite, model, model_params, dataset, dataset_params, method, params,
           any_value(label) AS label, d, any_value(total_params) AS total_params, metric, epsilon, any_value(delta) AS delta,
           count(*) AS n,
           count(*) FILTER (WHERE value IS NOT NULL AND
                            CASE WHEN higher_is_better THEN value >= epsilon ELSE value <= epsilon END)
             AS successes,
           successes / n AS p_success
    FROM trial_values
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, d, metric, epsilon
    """)
    con.execute("""
    CREATE OR REPLACE VIEW leaderboard AS
    WITH g AS (
        SELECT suite, model, model_params, dataset, dataset_params, method, params,
               any_value(label) AS label, metric, epsilon, any_value(delta) AS delta, any_value(total_params) AS total_params,
               min(d) FILTER (WHERE successes >= (1 - delta) * n - 1e-9) AS d_star,
               arg_min(n, d) FILTER (WHERE successes >= (1 - delta) * n - 1e-9) AS n_at_star,
               min(n) AS min_n, max(d) AS max_d
        FROM success
        GROUP BY suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon
    )
    SELECT suite, model, model_params, dataset, dataset_params, method, params, label, metric,
           epsilon, delta, d_star, total_params, d_star / total_params AS d_star_fraction,
           coalesce(n_at_star, min_n) AS n_seeds, max_d,
           rank() OVER (PARTITION BY suite, model, model_params, dataset, dataset_params, metric, epsilon
                        ORDER BY d_star ASC NULLS LAST) AS rank
    FROM g
    """)


def _m002_statistics(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 2: P_s confidence intervals (Wilson) in `success`; d*'s interval, Li et al.'s
    d_int90 and the adaptive search's answer in `leaderboard`; theory `predictions`."""
    con.execute("""
    CREATE TABLE suite_statistics (
        suite VARCHAR PRIMARY KEY,
        strategy VARCHAR,            -- 'grid' | 'adaptive'
        confidence DOUBLE,           -- two-sided level of the P_s intervals
        z DOUBLE                     -- its normal quantile (Wilson interval)
    )""")
    con.execute("""
    CREATE TABLE searches (          -- d* decided by the adaptive search (dofbench.adaptive)
        suite VARCHAR, model VARCHAR, model_params VARCHAR, dataset VARCHAR, dataset_params VARCHAR,
        method VARCHAR, params VARCHAR, metric VARCHAR, epsilon DOUBLE, d_star INTEGER,
        trials INTEGER, steps BIGINT, note VARCHAR
    )""")
    con.execute("""
    CREATE TABLE predictions (       -- theory: predicted d*(ε) (dofbench.theory, dofbench.hessian)
        suite VARCHAR, model VARCHAR, dataset VARCHAR, method VARCHAR, metric VARCHAR,
        epsilon DOUBLE, d_star_pred DOUBLE, d_star_pred_lo DOUBLE, d_star_pred_hi DOUBLE,
        source VARCHAR
    )""")
    con.execute("""
    CREATE OR REPLACE VIEW success AS
    WITH c AS (
        SELECT suite, model, model_params, dataset, dataset_params, method, params,
               any_value(label) AS label, d, any_value(total_params) AS total_params, metric, epsilon,
               any_value(delta) AS delta, count(*) AS n,
               count(*) FILTER (WHERE value IS NOT NULL AND
                                CASE WHEN higher_is_better THEN value >= epsilon ELSE value <= epsilon END)
                 AS successes
        FROM trial_values
        GROUP BY suite, model, model_params, dataset, dataset_params, method, params, d, metric, epsilon
    ), w AS (
        SELECT c.*, successes / n AS p_success,
               coalesce(s.confidence, 0.95) AS confidence, coalesce(s.z, 1.959963984540054) AS z
        FROM c LEFT JOIN suite_statistics s USING (suite)
    )
    SELECT suite, model, model_params, dataset, dataset_params, method, params, label, d, total_params,
           metric, epsilon, delta, n, successes, p_success,
           greatest(0.0, (successes + z * z / 2) / (n + z * z)
                         - z / (n + z * z) * sqrt(successes * (n - successes) / n + z * z / 4)) AS p_lo,
           least(1.0, (successes + z * z / 2) / (n + z * z)
                      + z / (n + z * z) * sqrt(successes * (n - successes) / n + z * z / 4)) AS p_hi,
           confidence
    FROM w
    """)
    con.execute("""
    CREATE OR REPLACE VIEW leaderboard AS
    WITH g AS (
        SELECT suite, model, model_params, dataset, dataset_params, method, params,
               any_value(label) AS label, metric, epsilon, any_value(delta) AS delta, any_value(total_params) AS total_params,
               min(d) FILTER (WHERE successes >= (1 - delta) * n - 1e-9) AS grid_d_star,
               min(d) FILTER (WHERE p_hi >= 1 - delta - 1e-9) AS d_star_lo,
               min(d) FILTER (WHERE p_lo >= 1 - delta - 1e-9) AS d_star_hi,
               min(n) AS min_n, max(d) AS max_d
        FROM success
        GROUP BY suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon
    ), means AS (          -- mean metric per d (each trial counted once)
        SELECT suite, model, model_params, dataset, dataset_params, method, params, d, metric,
               any_value(higher_is_better) AS higher_is_better, avg(value) AS mean_value
        FROM (SELECT DISTINCT suite, model, model_params, dataset, dataset_params, method, params, d,
                              metric, higher_is_better, trial_id, value FROM trial_values)
        GROUP BY ALL
    ), base AS (           -- the full-training baseline the suite runs itself
        SELECT suite, model, model_params, dataset, dataset_params, metric, avg(mean_value) AS baseline
        FROM means WHERE method = 'full' AND higher_is_better
        GROUP BY ALL
    ), dint AS (
        SELECT m.suite, m.model, m.model_params, m.dataset, m.dataset_params, m.method, m.params, m.metric,
               min(m.d) FILTER (WHERE m.mean_value > 0.9 * b.baseline) AS d_int90, any_value(b.baseline) AS baseline
        FROM means m JOIN base b USING (suite, model, model_params, dataset, dataset_params, metric)
        GROUP BY ALL
    ), s AS (
        SELECT suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon,
               any_value(d_star) AS d_star
        FROM searches GROUP BY ALL
    ), j AS (
        SELECT g.*, CASE WHEN coalesce(st.strategy, 'grid') = 'adaptive' THEN s.d_star ELSE g.grid_d_star END AS d_star,
               coalesce(st.strategy, 'grid') AS estimator, dint.d_int90, dint.baseline
        FROM g
        LEFT JOIN suite_statistics st USING (suite)
        LEFT JOIN s USING (suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon)
        LEFT JOIN dint USING (suite, model, model_params, dataset, dataset_params, method, params, metric)
    )
    SELECT j.suite, j.model, j.model_params, j.dataset, j.dataset_params, j.method, j.params, j.label,
           j.metric, j.epsilon, j.delta, j.d_star, j.total_params, j.d_star / j.total_params AS d_star_fraction,
           coalesce(x.n, j.min_n) AS n_seeds, j.max_d,
           rank() OVER (PARTITION BY j.suite, j.model, j.model_params, j.dataset, j.dataset_params, j.metric, j.epsilon
                        ORDER BY j.d_star ASC NULLS LAST) AS rank,
           j.d_star_lo, j.d_star_hi, j.d_int90, j.baseline, j.estimator
    FROM j
    LEFT JOIN success x ON x.suite = j.suite AND x.model = j.model AND x.model_params = j.model_params
         AND x.dataset = j.dataset AND x.dataset_params = j.dataset_params AND x.method = j.method
         AND x.params = j.params AND x.metric = j.metric AND x.epsilon = j.epsilon AND x.d = j.d_star
    """)


def _m003_references(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 3: published results from registry/ (filled by dofbench.references.sync when the
    store is opened for writing), and leaderboard ties broken by d*/D, then interval width."""
    con.execute("""
    CREATE TABLE reference_results (
        source VARCHAR, id VARCHAR, position INTEGER, citation VARCHAR, url VARCHAR, location VARCHAR,
        paper_model VARCHAR, model VARCHAR, model_params VARCHAR, dataset VARCHAR,
        dataset_params VARCHAR, dataset_variant VARCHAR, D BIGINT, method VARCHAR,
        rule VARCHAR,                -- 'd_int' (Li et al.'s d_int90) or 'd_star' (P_s >= 1 - delta at epsilon)
        rule_label VARCHAR, metric VARCHAR, fraction DOUBLE, baseline DOUBLE, epsilon DOUBLE,
        delta DOUBLE, value DOUBLE, bound VARCHAR, verified BOOLEAN, note VARCHAR,
        PRIMARY KEY (source, id)
    )""")
    con.execute("CREATE TABLE reference_registry (hash VARCHAR, loaded_at TIMESTAMPTZ)")
    # Re-rank the leaderboard of the earlier migrations, keeping every column they define.
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'leaderboard' "
        "ORDER BY ordinal_position").fetchall()]
    keys = [c for c in ("suite", "model", "model_params", "dataset", "dataset_params", "metric", "epsilon")
            if c in cols]
    order = ["d_star ASC NULLS LAST", "d_star_fraction ASC NULLS LAST"]
    width = _interval_width(cols)
    if width:
        order.append(f"{width} ASC NULLS LAST")
    con.execute("ALTER VIEW leaderboard RENAME TO leaderboard_base")
    con.execute(f"""
    CREATE VIEW leaderboard AS
    SELECT * REPLACE (rank() OVER (PARTITION BY {', '.join(keys)} ORDER BY {', '.join(order)}) AS rank)
    FROM leaderboard_base""")


def _interval_width(cols: list[str]) -> str | None:
    """SQL for the width of d*'s interval, from a (…_lo, …_hi)-style column pair, if any."""
    pairs = [("_lo", "_hi"), ("_low", "_high"), ("_lower", "_upper")]
    found = [(c[: -len(lo)], lo, hi) for c in cols for lo, hi in pairs
             if c.endswith(lo) and c[: -len(lo)] + hi in cols]
    found.sort(key=lambda f: "d_star" not in f[0])  # prefer d*'s own interval
    if not found:
        return None
    prefix, lo, hi = found[0]
    return f"({prefix}{hi} - {prefix}{lo})"


# A store's version is the count of migrations applied: append new ones at the end.
def _m004_suite_resolution(con: duckdb.DuckDBPyConnection) -> None:
    """A suite sees each of its trials with its own, current resolution of the component params.

    A trial's id hashes only non-default params, so a trial stored before a component gained a
    parameter keeps its id (and is not rerun) but carries the older params JSON. Grouping the
    views by the suite's resolution keeps it in the same group as its newer siblings."""
    for col in ("model_params", "dataset_params", "params", "label"):
        con.execute(f"ALTER TABLE suite_trials ADD COLUMN {col} VARCHAR")
    con.execute("""
    CREATE OR REPLACE VIEW trial_values AS
    SELECT st.suite, t.trial_id, t.model, coalesce(st.model_params, t.model_params) AS model_params,
           t.dataset, coalesce(st.dataset_params, t.dataset_params) AS dataset_params, t.method,
           coalesce(st.params, t.params) AS params, coalesce(st.label, t.label) AS label,
           t.d, t.total_params, t.seed, t.status,
           th.metric, th.epsilon, th.delta, th.higher_is_better,
           TRY_CAST(json_extract_string(t.metrics, '$."' || th.metric || '"') AS DOUBLE) AS value
    FROM suite_trials st
    JOIN trials t ON t.trial_id = st.trial_id
    JOIN suite_thresholds th ON th.suite = st.suite
    WHERE t.status IN ('ok', 'diverged')   -- failed trials are no evidence either way
    """)


MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_m001_core, _m002_statistics,
                                                               _m003_references, _m004_suite_resolution]


def _sync_references(con: duckdb.DuckDBPyConnection) -> None:
    """Load registry/ into reference_results when its content changed (see dofbench.references)."""
    from dofbench.results.references import sync

    sync(con)


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg or "conflicting" in msg or "being used" in msg


@dataclass(frozen=True)
class StoredTrial:
    """How a stored trial ended: what the scheduler needs to reuse it instead of running it."""

    status: str
    metrics: dict[str, float]
    steps: int


class Store:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = default_db_path(path)

    # ------------------------------------------------------------------ connections
    # Concurrency: DuckDB lets one process hold a file for writing, and no reader may hold it at
    # the same time. The driver therefore opens a write connection per committed trial (tens of
    # milliseconds) and closes it at once; readers open read-only connections, retrying with
    # jittered backoff while a write is under way, and close them when their query is done. A
    # writer waits much longer than a reader, so a run outlives a slow query instead of failing.
    WRITE_TIMEOUT_S = 600.0
    READ_TIMEOUT_S = 60.0

    @contextmanager
    def write(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short write connection, migrated to the latest schema."""
        con = self._connect(read_only=False, timeout=self.WRITE_TIMEOUT_S if timeout is None else timeout)
        try:
            migrate(con)
            _sync_references(con)  # registry/ → reference_results when the registry changed
            yield con
        finally:
            con.close()

    @contextmanager
    def read(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; fails with a clear message if there is no store yet."""
        timeout = self.READ_TIMEOUT_S if timeout is None else timeout
        if not self.path.exists():
            raise DofbenchError(f"no results store at {self.path}; run `dofbench run SUITE` first "
                                f"or point --db / {ENV_DB} at one")
        con = self._connect(read_only=True, timeout=timeout)
        try:
            if schema_version(con) < len(MIGRATIONS):
                con.close()
                with self.write(timeout=timeout):
                    pass
                con = self._connect(read_only=True, timeout=timeout)
            yield con
        finally:
            con.close()

    def _connect(self, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying while another process holds its lock (jittered backoff: short
        steps for the writer so it takes the first gap between readers)."""
        deadline = time.monotonic() + timeout
        delay, cap = 0.01, (0.25 if read_only else 0.05)
        while True:
            try:
                if not read_only:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                return duckdb.connect(str(self.path), read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    hint = (f" (still locked by another process after {timeout:g}s)" if _is_lock_error(exc) else "")
                    raise DofbenchError(f"cannot open results store {self.path}{hint}: "
                                        f"{' '.join(str(exc).split())}") from None
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, cap)

    # ------------------------------------------------------------------ writes
    def register_suite(self, name: str, description: str, spec: dict[str, Any], source: str,
                       trial_ids: list[str], metric: str, epsilons: list[float], delta: float,
                       higher_is_better: bool, specs: dict[str, dict[str, Any]] | None = None) -> None:
        """Record a suite's current definition: its spec, trial membership and thresholds.
        ``specs`` (trial id → resolved trial spec as JSON) gives the suite's resolution of each
        trial's params, which the views group by."""
        with self.write() as con:
            con.begin()
            con.execute("DELETE FROM suites WHERE suite = ?", [name])
            con.execute("INSERT INTO suites VALUES (?, ?, ?, ?, now())",
                        [name, description, canonical_json(spec), source])
            con.execute("DELETE FROM suite_trials WHERE suite = ?", [name])
            if trial_ids:
                specs = specs or {}
                con.executemany(
                    "INSERT INTO suite_trials (suite, trial_id, model_params, dataset_params, params, label) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [[name, t, *_resolution(specs.get(t))] for t in dict.fromkeys(trial_ids)])
            con.execute("DELETE FROM suite_thresholds WHERE suite = ?", [name])
            con.executemany("INSERT INTO suite_thresholds VALUES (?, ?, ?, ?, ?)",
                            [[name, metric, float(e), float(delta), higher_is_better] for e in epsilons])
            con.commit()

    def write_result(self, result, suite: str | None) -> None:
        """Commit one finished trial (a :class:`~dofbench.engine.result.TrialResult`) and its evals,
        replacing an earlier row with the same id."""
        spec = result.spec.model_dump(mode="json")
        metrics = result.metrics or {}
        row = {
            "trial_id": result.trial_id, "suite": suite,
            "model": spec["model"]["name"], "dataset": spec["dataset"]["name"], "method": spec["method"]["name"],
            **dict(zip(("model_params", "dataset_params", "params", "label"), _resolution(spec))),
            "d": spec["d"], "d_used": result.d_used, "total_params": result.total_params,
            "seed": spec["seed"], "status": result.status, "error": result.error,
            **{c: _finite(metrics.get(c)) for c in METRIC_COLUMNS},
            "metrics": json.dumps({k: _finite(v) for k, v in metrics.items()}, sort_keys=True),
            "steps": result.steps, "wall_s": result.wall_s, "device": result.device,
            "method_info": canonical_json(result.method_info or {}),
            "train": canonical_json(spec["train"]), "spec": canonical_json(spec),
            "versions": canonical_json(result.versions or {}),
            "started_at": result.started_at, "finished_at": result.finished_at,
        }
        cols = list(row)
        evals = [[result.trial_id, int(s), sp, m, _finite(v)] for s, sp, m, v in result.evals or []]
        with self.write() as con:
            con.begin()
            con.execute("DELETE FROM evals WHERE trial_id = ?", [row["trial_id"]])
            con.execute("DELETE FROM trials WHERE trial_id = ?", [row["trial_id"]])
            con.execute(f"INSERT INTO trials ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        [row[c] for c in cols])
            if evals:
                con.executemany("INSERT INTO evals VALUES (?, ?, ?, ?, ?)", evals)
            con.commit()

    def record_statistics(self, suite: str, strategy: str, confidence: float) -> None:
        """Write a suite's search strategy and the confidence level of its P_s intervals (the
        success and leaderboard views read them)."""
        with self.write() as con:
            con.begin()
            con.execute("DELETE FROM suite_statistics WHERE suite = ?", [suite])
            con.execute("INSERT INTO suite_statistics VALUES (?, ?, ?, ?)",
                        [suite, strategy, confidence, z_value(confidence)])
            con.commit()

    def write_searches(self, suite: str, metric: str, rows: list[list[Any]], *, trials: int, steps: int) -> None:
        """Replace the adaptive search's d* of ``suite``: one row per (model, model params, dataset,
        dataset params, method, method params, ε, d*), with the trials and steps the search cost."""
        with self.write() as con:
            con.begin()
            con.execute("DELETE FROM searches WHERE suite = ?", [suite])
            con.executemany("INSERT INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[suite, *r[:6], metric, *r[6:8], trials, steps, None] for r in rows])
            con.commit()

    # ------------------------------------------------------------------ reads
    def stored_trials(self, trial_ids: list[str], statuses: tuple[str, ...]) -> dict[str, "StoredTrial"]:
        """The stored outcome of each of ``trial_ids`` whose status is one of ``statuses``."""
        if not self.path.exists() or not trial_ids:
            return {}
        with self.read() as con:
            rows = con.execute(
                f"SELECT trial_id, status, metrics, steps FROM trials WHERE trial_id IN ({', '.join('?' * len(trial_ids))}) "
                f"AND status IN ({', '.join('?' * len(statuses))})", [*trial_ids, *statuses]).fetchall()
        return {r[0]: StoredTrial(r[1], json.loads(r[2] or "{}"), r[3] or 0) for r in rows}

    def done_ids(self, trial_ids: list[str], statuses: tuple[str, ...] = ("ok", "diverged", "failed")) -> set[str]:
        if not self.path.exists() or not trial_ids:
            return set()
        with self.read() as con:
            con.execute("CREATE TEMP TABLE wanted (trial_id VARCHAR)")
            con.executemany("INSERT INTO wanted VALUES (?)", [[t] for t in trial_ids])
            rows = con.execute(
                "SELECT t.trial_id FROM trials t JOIN wanted w USING (trial_id) "
                f"WHERE t.status IN ({', '.join('?' * len(statuses))})", list(statuses)).fetchall()
        return {r[0] for r in rows}

    def query(self, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run SQL on a read-only connection; return (columns, rows)."""
        with self.read() as con:
            try:
                cur = con.execute(sql, params or [])
            except duckdb.Error as exc:
                raise DofbenchError(f"query failed: {_one_line_db_error(exc)}") from None
            if cur.description is None:
                return [], []
            return [c[0] for c in cur.description], cur.fetchall()


def _resolution(spec: dict[str, Any] | None) -> list[str | None]:
    """(model_params, dataset_params, params, label) of a resolved trial spec, as stored."""
    if spec is None:
        return [None] * 4
    return [canonical_json(spec["model"]["params"]), canonical_json(spec["dataset"]["params"]),
            canonical_json(spec["method"]["params"]), method_label(spec)]


def method_label(spec: dict[str, Any]) -> str:
    """'name' or 'name[k=v,…]' with the method params that differ from their defaults."""
    changed = (spec.get("identity") or {}).get("method") or {}
    if not changed:
        return spec["method"]["name"]
    return spec["method"]["name"] + "[" + ",".join(f"{k}={canonical_json(v)}" for k, v in sorted(changed.items())) + "]"


def _finite(v: Any) -> Any:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _one_line_db_error(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "read-only mode" in text or "read_only" in text.lower():
        return f"the store is opened read-only: queries cannot modify it ({text})"
    return text


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'").fetchone()[0]
    if not exists:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0])


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the store's version; return the new version."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)")
    current = schema_version(con)
    for version, fn in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        con.begin()
        try:
            fn(con)
            con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
            con.commit()
        except Exception:
            con.rollback()
            raise
    return len(MIGRATIONS)
