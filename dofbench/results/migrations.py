"""The store's schema: numbered migrations that create or alter tables (a store's version is the
count applied), and the views, which live in ``views.sql`` and are recreated whenever the store is
opened for writing (so every store gets today's views, whatever version created it)."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Callable

import duckdb

from dofbench.config.identity import identity_label


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


def _m002_statistics(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 2: the suite's search strategy and confidence level (the Wilson intervals of the
    views), the adaptive search's d*, theory's predictions."""
    con.execute("""
    CREATE TABLE suite_statistics (
        suite VARCHAR PRIMARY KEY,
        strategy VARCHAR,            -- 'grid' | 'adaptive'
        confidence DOUBLE,           -- two-sided level of the P_s intervals
        z DOUBLE                     -- its normal quantile (Wilson interval)
    )""")
    con.execute("""
    CREATE TABLE searches (          -- d* decided by the adaptive search (dofbench.run.adaptive)
        suite VARCHAR, model VARCHAR, model_params VARCHAR, dataset VARCHAR, dataset_params VARCHAR,
        method VARCHAR, params VARCHAR, metric VARCHAR, epsilon DOUBLE, d_star INTEGER,
        trials INTEGER, steps BIGINT, note VARCHAR
    )""")
    con.execute("""
    CREATE TABLE predictions (       -- theory: predicted d*(ε) (dofbench.run.predictions)
        suite VARCHAR, model VARCHAR, dataset VARCHAR, method VARCHAR, metric VARCHAR,
        epsilon DOUBLE, d_star_pred DOUBLE, d_star_pred_lo DOUBLE, d_star_pred_hi DOUBLE,
        source VARCHAR
    )""")


def _m003_references(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 3: published results from registry/ (loaded when the store is opened for writing and
    the registry changed)."""
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


def _m004_suite_resolution(con: duckdb.DuckDBPyConnection) -> None:
    """A suite sees each of its trials with its own, current resolution of the component params.

    A trial's id hashes only non-default params, so a trial stored before a component gained a
    parameter keeps its id (and is not rerun) but carries the older params JSON. Grouping the
    views by the suite's resolution keeps it in the same group as its newer siblings."""
    for col in ("model_params", "dataset_params", "params", "label"):
        con.execute(f"ALTER TABLE suite_trials ADD COLUMN {col} VARCHAR")


def _m005_baselines(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 5: a suite's full-training baseline is marked on its membership
    (``suite_trials.baseline``), from the method's own declaration (``Method.baseline``), rather than
    recognised by a method name. Rows stored before: their suites knew one baseline method, the
    built-in ``full``; rerunning a suite rewrites its membership from the declarations."""
    con.execute("ALTER TABLE suite_trials ADD COLUMN baseline BOOLEAN DEFAULT false")
    con.execute("UPDATE suite_trials SET baseline = EXISTS (SELECT 1 FROM trials t "
                "WHERE t.trial_id = suite_trials.trial_id AND t.method = 'full')")


def _m006_tracebacks(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 6: a failed trial keeps the traceback of its error (``dofbench show trial ID``)."""
    con.execute("ALTER TABLE trials ADD COLUMN traceback VARCHAR")


def _m007_claims(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 7: trials a running driver has claimed (two drivers on one store share the work);
    a claim whose heartbeat is older than its lease is free again."""
    con.execute("CREATE TABLE claims (trial_id VARCHAR PRIMARY KEY, owner VARCHAR, heartbeat TIMESTAMPTZ)")


def _m008_labels(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 8: models and datasets are shown like methods, with their non-default params
    (``mlp[hidden=[32]]``): ``trials.model_label`` and ``dataset_label``, written with each trial and
    filled here from the identity in each stored trial's spec."""
    con.execute("ALTER TABLE trials ADD COLUMN model_label VARCHAR")
    con.execute("ALTER TABLE trials ADD COLUMN dataset_label VARCHAR")
    rows = con.execute("SELECT trial_id, model, dataset, spec FROM trials").fetchall()
    updates = []
    for trial_id, model, dataset, spec in rows:
        try:
            identity = (json.loads(spec or "{}").get("identity") or {})
        except ValueError:
            identity = {}
        updates.append([identity_label(model, identity.get("model")),
                        identity_label(dataset, identity.get("dataset")), trial_id])
    if updates:
        con.executemany("UPDATE trials SET model_label = ?, dataset_label = ? WHERE trial_id = ?", updates)


def _m009_yardstick(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 9: the method a suite's comparison measures the others against is marked on its
    membership (``suite_trials.yardstick``), from the method's declaration (``Method.yardstick``).
    Rows stored before: their suites knew one such method, the built-in ``random-subspace``;
    rerunning a suite rewrites its membership from the declarations."""
    con.execute("ALTER TABLE suite_trials ADD COLUMN yardstick BOOLEAN DEFAULT false")
    con.execute("UPDATE suite_trials SET yardstick = EXISTS (SELECT 1 FROM trials t "
                "WHERE t.trial_id = suite_trials.trial_id AND t.method = 'random-subspace')")


def _m010_runs(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 10: one row per run of a suite (what ``dofbench run`` printed as its summary), so
    the run's wall time can be shown next to the compute its trials summed."""
    con.execute("""
    CREATE TABLE runs (
        suite VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
        wall_s DOUBLE,               -- the run's own time, start to end
        executor VARCHAR, workers INTEGER,
        trials INTEGER, skipped INTEGER, ok INTEGER, diverged INTEGER, failed INTEGER,
        compute_s DOUBLE,            -- summed wall_s of the trials this run stored
        stopped VARCHAR              -- NULL, or the budget or signal that ended it early
    )""")


def _m011_evidence(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 11: what d* may rest on.

    - ``suite_trials`` records each member's model, dataset, method, d and seed (the suite's
      resolution), so a member whose trial failed or is not stored yet still counts as planned:
      the views can tell a d with every seed from one with missing seeds. Rows stored before are
      filled from ``trials`` where the trial is stored. ``nested``: the member's method declares
      nested subspaces (one projection per seed whose first d columns are the d-dim subspace).
    - ``suite_statistics`` adds the suite's seed count and ``threshold.min_seeds``.
    - ``binomial_intervals``: the Clopper–Pearson interval of every (n, k) at each confidence level
      in use (filled by the store; SQL has no beta quantile), which the ``success`` view joins.
    - ``searches`` adds how many seeds the adaptive search's d* rests on and whether every d it
      judged had enough of them.
    - ``d_star_intervals``: d*'s interval (:mod:`dofbench.results.intervals`), computed in Python
      after a run from the counts the ``success`` view shows (``evidence``); the leaderboard shows
      it only while the evidence is unchanged."""
    for col, kind in (("model", "VARCHAR"), ("dataset", "VARCHAR"), ("method", "VARCHAR"), ("d", "INTEGER"),
                      ("seed", "INTEGER")):
        con.execute(f"ALTER TABLE suite_trials ADD COLUMN {col} {kind}")
    con.execute("ALTER TABLE suite_trials ADD COLUMN nested BOOLEAN DEFAULT false")
    con.execute("UPDATE suite_trials SET model = t.model, dataset = t.dataset, method = t.method, d = t.d, "
                "seed = t.seed FROM trials t WHERE t.trial_id = suite_trials.trial_id")
    con.execute("ALTER TABLE suite_statistics ADD COLUMN seeds INTEGER")
    con.execute("ALTER TABLE suite_statistics ADD COLUMN min_seeds INTEGER")
    con.execute("""
    CREATE TABLE binomial_intervals (
        confidence DOUBLE, n INTEGER, k INTEGER, lo DOUBLE, hi DOUBLE,
        PRIMARY KEY (confidence, n, k)
    )""")
    con.execute("ALTER TABLE searches ADD COLUMN n_seeds INTEGER")
    con.execute("ALTER TABLE searches ADD COLUMN complete BOOLEAN")
    con.execute("""
    CREATE TABLE d_star_intervals (
        suite VARCHAR, model VARCHAR, model_params VARCHAR, dataset VARCHAR, dataset_params VARCHAR,
        method VARCHAR, params VARCHAR, metric VARCHAR, epsilon DOUBLE,
        evidence VARCHAR,            -- 'd:successes/n,…' of the success view it was computed from
        likelihood VARCHAR,          -- 'bernoulli' (independent subspaces) | 'first-success' (nested)
        confidence DOUBLE,
        d_star_fit DOUBLE,           -- the fitted (1 − δ)-quantile of the first-success dimension
        fit_lo DOUBLE, fit_hi DOUBLE, -- its profile-likelihood interval (NULL: unbounded that side)
        d_star_lo INTEGER, d_star_hi INTEGER,  -- the same on the grid (NULL hi: beyond the grid)
        note VARCHAR, computed_at TIMESTAMPTZ
    )""")


def _m012_angular_dimension(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 12: the local angular dimension measured from first-success dimensions (Crofton),
    next to the theory's.

    - ``angular_dimension``: per (suite, task, method, metric, ε) of nested subspaces, the empirical
      w² = D + ½ − mean d_s with its interval (:mod:`dofbench.results.intervals`), the seeds it
      rests on, how many are exact, censored (no success on the grid) or non-monotone.
    - ``predictions`` adds the task's params (two tasks of one model name are no longer
      confused), the predicted w² with its Monte Carlo interval and the per-seed spread of d_s, and
      whether the prediction applies at all (``status`` 'ok' | 'not applicable', ``reason``)."""
    con.execute("""
    CREATE TABLE angular_dimension (
        suite VARCHAR, model VARCHAR, model_params VARCHAR, dataset VARCHAR, dataset_params VARCHAR,
        method VARCHAR, params VARCHAR, label VARCHAR, metric VARCHAR, epsilon DOUBLE, D BIGINT,
        seeds INTEGER,               -- seeds with usable trials
        exact INTEGER,               -- seeds whose d_s is one integer d
        censored INTEGER,            -- seeds that never succeeded on the grid
        non_monotone INTEGER,        -- seeds that failed at some d above their first success
        mean_d_s DOUBLE, sd_d_s DOUBLE,
        w2 DOUBLE, w2_lo DOUBLE, w2_hi DOUBLE, confidence DOUBLE,
        evidence VARCHAR, note VARCHAR, computed_at TIMESTAMPTZ
    )""")
    for col, kind in (("model_params", "VARCHAR"), ("dataset_params", "VARCHAR"), ("params", "VARCHAR"),
                      ("w2", "DOUBLE"), ("w2_lo", "DOUBLE"), ("w2_hi", "DOUBLE"), ("w2_sd", "DOUBLE"),
                      ("status", "VARCHAR"), ("reason", "VARCHAR")):
        con.execute(f"ALTER TABLE predictions ADD COLUMN {col} {kind}")


# A store's version is the count of migrations applied: append new ones at the end.
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [
    _m001_core, _m002_statistics, _m003_references, _m004_suite_resolution, _m005_baselines, _m006_tracebacks,
    _m007_claims, _m008_labels, _m009_yardstick, _m010_runs, _m011_evidence, _m012_angular_dimension]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'").fetchone()[0]
    if not exists:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0])


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the store's version, each in its own transaction, then
    recreate the views; return the new version."""
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
    create_views(con)
    return len(MIGRATIONS)


def drop_views(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every view of the store (also those of older versions, e.g. ``leaderboard_base``)."""
    for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main'").fetchall():
        con.execute(f'DROP VIEW "{name}"')


def create_views(con: duckdb.DuckDBPyConnection, temporary: bool = False) -> None:
    """(Re)create the views of ``views.sql`` in the store, in one transaction; with ``temporary``,
    as temporary views of this connection only (they shadow the stored ones, and a read-only
    connection can create them: nothing is written)."""
    sql = files("dofbench.results").joinpath("views.sql").read_text(encoding="utf-8")
    statements = _statements(sql)
    if temporary:
        for statement in statements:
            con.execute(statement.replace("CREATE VIEW", "CREATE OR REPLACE TEMP VIEW", 1))
        return
    con.begin()
    try:
        drop_views(con)
        for statement in statements:
            con.execute(statement)
        con.commit()
    except Exception:
        con.rollback()
        raise


def _statements(sql: str) -> list[str]:
    """The statements of a SQL file: split at semicolons that end a line (comments dropped)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]
