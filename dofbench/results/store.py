"""The DuckDB results store: the contract with users.

Only the driver writes, through short write connections: each finished trial is committed on its
own, so an interrupted run loses at most the trials in flight. Readers (``query``,
``leaderboard``, plots) open the file read-only and retry while a writer holds it. The first write
connection of a :class:`Store` prepares the file once: it applies the migrations
(:mod:`dofbench.results.migrations`), recreates the views (``views.sql``) and loads the published
references of ``registry/`` when they changed. Every statement that writes is a method here; the
read queries are :mod:`dofbench.results.queries`.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import duckdb

from dofbench.config.identity import canonical_json, identity_label
from dofbench.errors import DofbenchError
from dofbench.results import references
from dofbench.results.migrations import MIGRATIONS, create_views, migrate, schema_version
from dofbench.results.stats import DEFAULT_CONFIDENCE, clopper_pearson_table, z_value

DEFAULT_INTERVAL_N = 64
"""Every store holds the P_s intervals at :data:`DEFAULT_CONFIDENCE` for n up to this; a suite with
more seeds or another level adds its own when it records its statistics."""

ENV_DB = "DOFBENCH_DB"
DEFAULT_DB = "dofbench.duckdb"

# The stable columns of `trials` filled from the metrics dict (the rest of the metrics stay in
# the `metrics` JSON column).
METRIC_COLUMNS = ("train_loss", "train_acc", "test_loss", "test_acc",
                  "best_train_loss", "best_train_acc", "best_test_loss", "best_test_acc")


def default_db_path(db: str | os.PathLike | None = None) -> Path:
    return Path(db or os.environ.get(ENV_DB) or DEFAULT_DB)


# What a read connection is allowed (DuckDB's own settings): no file access beyond the store
# (COPY … TO, EXPORT DATABASE, ATTACH, read_csv/parquet of other files), no extension autoloaded,
# installed or loaded from disk, no spilling to a temp directory, and the configuration locked, so
# no SET/PRAGMA can undo any of it (or switch on logs and profiles that write files).
READ_ONLY_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "temp_directory": "",
    "lock_configuration": True,
}
# The driver's write connections run dofbench's own statements only; they never fetch or load
# an extension either.
WRITE_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
# What `query` runs: one statement that reads.
QUERY_STATEMENTS = ("SELECT",)


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(".")


def _user_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]


def _newer(path: Path, version: int) -> str:
    return (f"{path} was written by a newer dofbench (store schema {version}, this version knows "
            f"{len(MIGRATIONS)}); upgrade dofbench to read or write it")


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg or "conflicting" in msg or "being used" in msg


@dataclass(frozen=True)
class StoredTrial:
    """How a stored trial ended: what the scheduler needs to reuse it instead of running it."""

    status: str
    metrics: dict[str, float]
    steps: int


def _trial_row(result, suite: str | None) -> dict[str, Any]:
    """The ``trials`` row of a finished trial."""
    spec = result.spec.model_dump(mode="json")
    metrics = result.metrics or {}
    return {
        "trial_id": result.trial_id, "suite": suite,
        "model": spec["model"]["name"], "dataset": spec["dataset"]["name"], "method": spec["method"]["name"],
        **dict(zip(("model_params", "dataset_params", "params", "label"), _resolution(spec))),
        "model_label": component_label(spec, "model"), "dataset_label": component_label(spec, "dataset"),
        "d": spec["d"], "d_used": result.d_used, "total_params": result.total_params,
        "seed": spec["seed"], "status": result.status, "error": result.error, "traceback": result.traceback,
        **{c: _finite(metrics.get(c)) for c in METRIC_COLUMNS},
        "metrics": json.dumps({k: _finite(v) for k, v in metrics.items()}, sort_keys=True),
        "steps": result.steps, "wall_s": result.wall_s, "device": result.device,
        "method_info": canonical_json(result.method_info or {}),
        "train": canonical_json(spec["train"]), "spec": canonical_json(spec),
        "versions": canonical_json(result.versions or {}),
        "started_at": result.started_at, "finished_at": result.finished_at,
    }


class Store:
    """The results store at ``path`` (default: $DOFBENCH_DB or ./dofbench.duckdb)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = default_db_path(path)
        self._synced = False  # registry/ loaded by this Store's first write connection

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
        """A short write connection to the store, created and migrated to the latest schema on
        this Store's first write. A file that is not a dofbench store is refused before anything
        is written."""
        self._check_file(for_write=True)
        con = self._connect(read_only=False, timeout=self.WRITE_TIMEOUT_S if timeout is None else timeout)
        try:
            with self._damaged():
                self._prepare(con)
                yield con
        finally:
            con.close()

    @contextmanager
    def _damaged(self) -> Iterator[None]:
        """dofbench's own statements on an opened file failing: the file is damaged (truncated,
        corrupt), not the user's SQL."""
        try:
            yield
        except duckdb.Error as exc:
            raise DofbenchError(f"results store {self.path}: {' '.join(str(exc).split())[:200]} "
                                "(is the file damaged or truncated?)") from None

    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Once per Store (and again if the file's schema is behind, e.g. a new file at the same
        path): migrate, recreate the views, load the registry when it changed."""
        version = schema_version(con)
        if version == 0 and _user_tables(con):
            raise DofbenchError(f"{self.path} is a DuckDB database but not a dofbench store (it has tables "
                                "and no schema_migrations): refusing to add tables to it; point --db at a "
                                "dofbench store or a new file")
        if version > len(MIGRATIONS):
            raise DofbenchError(_newer(self.path, version))
        if not self._synced or version < len(MIGRATIONS):
            migrate(con)
            self._sync_references(con)
            self._ensure_binomial_intervals(con, DEFAULT_CONFIDENCE, DEFAULT_INTERVAL_N)
            self._synced = True

    def _ensure_binomial_intervals(self, con: duckdb.DuckDBPyConnection, confidence: float, n_max: int) -> None:
        """Fill ``binomial_intervals`` with the Clopper–Pearson interval of every k ≤ n ≤ ``n_max`` at
        ``confidence`` (what the ``success`` view joins), unless it already holds them."""
        have = con.execute("SELECT coalesce(max(n), 0) FROM binomial_intervals WHERE abs(confidence - ?) < 1e-12",
                           [confidence]).fetchone()[0]
        if have >= n_max:
            return
        n, k, lo, hi = clopper_pearson_table(n_max, confidence, start=have + 1)
        con.begin()
        try:
            con.execute("INSERT INTO binomial_intervals SELECT ?, unnest(?::INTEGER[]), unnest(?::INTEGER[]), "
                        "unnest(?::DOUBLE[]), unnest(?::DOUBLE[])", [confidence, n, k, lo, hi])
            con.commit()
        except Exception:
            con.rollback()
            raise

    def _sync_references(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Load registry/ into ``reference_results`` if its content hash changed; True if it did."""
        digest = references.registry_hash()
        row = con.execute("SELECT hash FROM reference_registry").fetchone()
        if row is not None and row[0] == digest:
            return False
        rows = references.registry_rows()
        con.begin()
        try:
            con.execute("DELETE FROM reference_results")
            if rows:
                cols = references.COLUMNS
                con.executemany(f"INSERT INTO reference_results ({', '.join(cols)}) "
                                f"VALUES ({', '.join('?' * len(cols))})", rows)
            con.execute("DELETE FROM reference_registry")
            con.execute("INSERT INTO reference_registry VALUES (?, now())", [digest])
            con.commit()
        except Exception:
            con.rollback()
            raise
        return True

    @contextmanager
    def read(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that can read the store and nothing else (:data:`READ_ONLY_CONFIG`): no
        file is written or created, no other database attached, no extension installed or
        loaded, the configuration locked. The views are today's (``views.sql``, as temporary
        views), whatever version wrote the file. A store of an older schema is not migrated here
        (readers never change a file): the error says how to upgrade it."""
        timeout = self.READ_TIMEOUT_S if timeout is None else timeout
        self._check_file(for_write=False)
        con = self._connect(read_only=True, timeout=timeout)
        try:
            with self._damaged():
                version = schema_version(con)
            if version == 0:
                raise DofbenchError(f"{self.path} is not a dofbench store (no schema_migrations table); "
                                    f"point --db / {ENV_DB} at one")
            if version > len(MIGRATIONS):
                raise DofbenchError(_newer(self.path, version))
            if version < len(MIGRATIONS):
                raise DofbenchError(
                    f"{self.path} was written by an older dofbench (store schema {version}, this version "
                    f"reads {len(MIGRATIONS)}); `dofbench migrate --db {self.path}` upgrades it (so does any "
                    "`dofbench run` on it)")
            with self._damaged():
                create_views(con, temporary=True)
                yield con
        finally:
            con.close()

    def check_writable(self) -> None:
        """Refuse, before a run writes anything, a path that is not (and cannot become) a store."""
        self._check_file(for_write=True)
        if not self.path.exists() and not os.access(self.path.parent if self.path.parent.exists() else
                                                    _existing_parent(self.path), os.W_OK):
            raise DofbenchError(f"--db {self.path}: cannot create the store there (the directory is not writable)")

    def migrate(self) -> int:
        """Bring the file to the latest schema (creating it if missing); return the version."""
        with self.write() as con:
            return schema_version(con)

    def _check_file(self, for_write: bool) -> None:
        """Refuse, in one line and before DuckDB opens it, a path that cannot be a store: a
        directory, or a file that is not a DuckDB database (DuckDB would try to load an extension
        for a SQLite file, for instance). A missing file is fine for writing (it is created)."""
        p = self.path
        if p.is_dir():
            raise DofbenchError(f"--db {p}: is a directory, not a results store file")
        if not p.exists():
            if for_write:
                return
            raise DofbenchError(f"no results store at {p}; run `dofbench run SUITE` first "
                                f"or point --db / {ENV_DB} at one")
        if not p.is_file():
            raise DofbenchError(f"--db {p}: not a regular file")
        try:
            with open(p, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise DofbenchError(f"--db {p}: cannot read it ({exc.strerror or exc})") from None
        if len(head) < 12 or head[8:12] != b"DUCK":
            what = ("a SQLite database" if head.startswith(b"SQLite format 3") else
                    "empty" if not head else "not a DuckDB database")
            raise DofbenchError(f"--db {p}: not a dofbench store ({what})")

    def _connect(self, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying while another process holds its lock (jittered backoff: short
        steps for the writer so it takes the first gap between readers)."""
        deadline = time.monotonic() + timeout
        delay, cap = 0.01, (0.25 if read_only else 0.05)
        config = READ_ONLY_CONFIG if read_only else WRITE_CONFIG
        while True:
            try:
                if not read_only:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                return duckdb.connect(str(self.path), read_only=read_only, config=dict(config))
            except OSError as exc:
                raise DofbenchError(f"cannot create results store {self.path}: {exc.strerror or exc}") from None
            except duckdb.Error as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    hint = (f" (still locked by another process after {timeout:g}s)" if _is_lock_error(exc) else "")
                    raise DofbenchError(f"cannot open results store {self.path}{hint}: "
                                        f"{' '.join(str(exc).split())}") from None
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, cap)

    # ------------------------------------------------------------------ writes
    def register_suite(self, name: str, description: str, spec: dict[str, Any], source: str,
                       trial_ids: list[str], metric: str, epsilons: list[float], delta: float,
                       higher_is_better: bool, specs: dict[str, dict[str, Any]] | None = None,
                       baselines: set[str] | frozenset[str] = frozenset(),
                       yardsticks: set[str] | frozenset[str] = frozenset(),
                       nested: set[str] | frozenset[str] = frozenset()) -> None:
        """Record a suite's current definition: its spec, trial membership and thresholds.
        ``specs`` (trial id → resolved trial spec as JSON) gives the suite's resolution of each
        trial (its model, dataset, method, params, d and seed), which the views group by — a
        member counts as planned even before its trial is stored; ``baselines`` are the ids of
        trials of a method that declares itself the full-training baseline (d_int90 compares with
        them), ``yardsticks`` those of a method that declares itself the yardstick of comparisons
        (``dofbench compare``), ``nested`` those of a method whose subspaces of a seed are nested."""
        with self.write() as con:
            con.begin()
            con.execute("DELETE FROM suites WHERE suite = ?", [name])
            con.execute("INSERT INTO suites VALUES (?, ?, ?, ?, now())",
                        [name, description, canonical_json(spec), source])
            con.execute("DELETE FROM suite_trials WHERE suite = ?", [name])
            if trial_ids:
                specs = specs or {}
                cols = ("suite", "trial_id", *MEMBER_COLUMNS, "baseline", "nested", "yardstick")
                con.executemany(
                    f"INSERT INTO suite_trials ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [[name, t, *_member(specs.get(t)), t in baselines, t in nested, t in yardsticks]
                     for t in dict.fromkeys(trial_ids)])
            con.execute("DELETE FROM suite_thresholds WHERE suite = ?", [name])
            con.executemany("INSERT INTO suite_thresholds VALUES (?, ?, ?, ?, ?)",
                            [[name, metric, float(e), float(delta), higher_is_better] for e in epsilons])
            con.commit()

    def write_result(self, result, suite: str | None, release: str | None = None) -> None:
        """Commit one finished trial (a :class:`~dofbench.engine.result.TrialResult`) and its evals,
        replacing an earlier row with the same id; ``release``: the driver whose claim on it ends."""
        self.write_results([result], suite, release)

    def write_results(self, results, suite: str | None, release: str | None = None) -> None:
        """Commit finished trials (those of one group, say) and their evals in one transaction:
        :meth:`write_result` for each, one connection for all (of two results with one id, the
        later is kept)."""
        results = list({r.trial_id: r for r in results}.values())
        rows = [_trial_row(r, suite) for r in results]
        if not rows:
            return
        cols = list(rows[0])
        ids = [[row["trial_id"]] for row in rows]
        evals = [[r.trial_id, int(s), sp, m, _finite(v)] for r in results for s, sp, m, v in r.evals or []]
        with self.write() as con:
            con.begin()
            con.executemany("DELETE FROM evals WHERE trial_id = ?", ids)
            con.executemany("DELETE FROM trials WHERE trial_id = ?", ids)
            con.executemany(f"INSERT INTO trials ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [[row[c] for c in cols] for row in rows])
            if evals:
                con.executemany("INSERT INTO evals VALUES (?, ?, ?, ?, ?)", evals)
            if release is not None:
                con.executemany("DELETE FROM claims WHERE trial_id = ? AND owner = ?", [[*i, release] for i in ids])
            con.commit()

    # ------------------------------------------------------------------ claims
    CLAIM_LEASE_S = 60.0

    @staticmethod
    def claim_owner() -> str:
        """Who this process is in the store's claims: host, pid and a token."""
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def claim_trials(self, trial_ids: list[str], owner: str,
                     stored_statuses: tuple[str, ...] = ()) -> tuple[bool, dict[str, StoredTrial]]:
        """Claim ``trial_ids`` for ``owner`` unless another driver holds a live claim on any of them
        (its heartbeat younger than :attr:`CLAIM_LEASE_S`, and, for a driver of this machine, its
        process still running). Returns whether they were claimed, and
        those of them stored meanwhile with one of ``stored_statuses`` (by another driver), in the
        same transaction: a driver never trains what another has just stored."""
        marks = ", ".join("?" * len(trial_ids))
        with self.write() as con:
            con.begin()
            con.execute(f"DELETE FROM claims WHERE heartbeat < now() - INTERVAL {int(self.CLAIM_LEASE_S)} SECOND")
            dead = [o for (o,) in con.execute("SELECT DISTINCT owner FROM claims").fetchall() if _owner_is_dead(o)]
            if dead:  # a driver of this machine that was killed (kill -9): its claims are free now
                con.execute(f"DELETE FROM claims WHERE owner IN ({', '.join('?' * len(dead))})", dead)
            taken = con.execute(f"SELECT count(*) FROM claims WHERE owner <> ? AND trial_id IN ({marks})",
                                [owner, *trial_ids]).fetchone()[0]
            if taken:
                con.rollback()
                return False, {}
            stored = {}
            if stored_statuses:
                rows = con.execute(
                    f"SELECT trial_id, status, metrics, steps FROM trials WHERE trial_id IN ({marks}) "
                    f"AND status IN ({', '.join('?' * len(stored_statuses))})", [*trial_ids, *stored_statuses]).fetchall()
                stored = {r[0]: StoredTrial(r[1], json.loads(r[2] or "{}"), r[3] or 0) for r in rows}
            con.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, now())", [[t, owner] for t in trial_ids])
            con.commit()
            return True, stored

    def heartbeat(self, owner: str) -> None:
        """Renew every claim of ``owner``."""
        with self.write() as con:
            con.execute("UPDATE claims SET heartbeat = now() WHERE owner = ?", [owner])

    def release_claims(self, owner: str) -> None:
        """Drop every claim of ``owner`` (its run ended)."""
        if self.path.exists():
            with self.write() as con:
                con.execute("DELETE FROM claims WHERE owner = ?", [owner])

    def record_statistics(self, suite: str, strategy: str, confidence: float, seeds: int | None = None,
                          min_seeds: int | None = None) -> None:
        """Write a suite's search strategy, the confidence level of its P_s intervals, its number
        of seeds and the usable seeds a d needs to be eligible for d* (``min_seeds``; None: all):
        the success and leaderboard views read them."""
        with self.write() as con:
            self._ensure_binomial_intervals(con, confidence, max(DEFAULT_INTERVAL_N, seeds or 0))
            con.begin()
            con.execute("DELETE FROM suite_statistics WHERE suite = ?", [suite])
            con.execute("INSERT INTO suite_statistics (suite, strategy, confidence, z, seeds, min_seeds) "
                        "VALUES (?, ?, ?, ?, ?, ?)", [suite, strategy, confidence, z_value(confidence), seeds, min_seeds])
            con.commit()

    def write_run(self, suite: str, *, started_at: str, finished_at: str, wall_s: float, executor: str,
                  workers: int | None, trials: int, skipped: int, ok: int, diverged: int, failed: int,
                  compute_s: float, stopped: str | None = None) -> None:
        """Record one run of a suite (table ``runs``): its own wall time next to the compute
        (summed trial wall_s) of the trials it stored."""
        with self.write() as con:
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [suite, started_at, finished_at, wall_s, executor, workers, trials, skipped, ok,
                         diverged, failed, compute_s, stopped])

    PREDICTION_COLUMNS = ("suite", "model", "dataset", "method", "metric", "epsilon", "d_star_pred", "d_star_pred_lo",
                          "d_star_pred_hi", "source", "model_params", "dataset_params", "params", "w2", "w2_lo", "w2_hi",
                          "w2_sd", "status", "reason")

    def write_predictions(self, rows: list[dict[str, Any]]) -> None:
        """Replace the predictions of the (suite, model, model params, dataset, dataset params,
        method, metric, source) keys of ``rows`` (dicts of :attr:`PREDICTION_COLUMNS`; missing
        ones NULL): predicted d* with its interval, w² with its Monte Carlo interval and the
        per-seed spread of d_s, and status 'ok' | 'not applicable' with the reason."""
        cols = self.PREDICTION_COLUMNS
        with self.write() as con:
            con.begin()
            keys = {(r["suite"], r["model"], r.get("model_params"), r["dataset"], r.get("dataset_params"), r["method"],
                     r["metric"], r["source"]) for r in rows}
            for k in keys:
                con.execute("DELETE FROM predictions WHERE suite = ? AND model = ? AND (model_params IS NULL OR "
                            "model_params = ?) AND dataset = ? AND (dataset_params IS NULL OR dataset_params = ?) "
                            "AND method = ? AND metric = ? AND source = ?", list(k))
            con.executemany(f"INSERT INTO predictions ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [[r.get(c) for c in cols] for r in rows])
            con.commit()

    def write_searches(self, suite: str, metric: str, rows: list[list[Any]], *, trials: int, steps: int) -> None:
        """Replace the adaptive search's d* of ``suite``: one row per (model, model params, dataset,
        dataset params, method, method params, ε, d*, n_seeds, complete, note), with the trials and
        steps the search cost; ``n_seeds``: the usable seeds d* rests on, ``complete``: whether
        every d the search judged had enough of them."""
        cols = ("suite", "model", "model_params", "dataset", "dataset_params", "method", "params", "metric",
                "epsilon", "d_star", "trials", "steps", "note", "n_seeds", "complete")
        with self.write() as con:
            con.begin()
            con.execute("DELETE FROM searches WHERE suite = ?", [suite])
            con.executemany(f"INSERT INTO searches ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [[suite, *r[:6], metric, r[6], r[7], trials, steps, r[10] if len(r) > 10 else None,
                              r[8] if len(r) > 8 else None, r[9] if len(r) > 9 else None] for r in rows])
            con.commit()

    def write_d_star_intervals(self, suite: str, rows: list[list[Any]], angular: list[list[Any]] = ()) -> None:
        """Replace the d* intervals of ``suite`` (:func:`dofbench.results.intervals.refresh`): rows of
        (model, model params, dataset, dataset params, method, params, metric, ε, evidence,
        likelihood, confidence, d_star_fit, fit_lo, fit_hi, d_star_lo, d_star_hi, note); and its
        empirical angular dimensions, rows of the columns of ``angular_dimension`` after the suite
        up to the note."""
        cols = ("suite", "model", "model_params", "dataset", "dataset_params", "method", "params", "metric",
                "epsilon", "evidence", "likelihood", "confidence", "d_star_fit", "fit_lo", "fit_hi", "d_star_lo",
                "d_star_hi", "note")
        with self.write() as con:
            con.begin()
            con.execute("DELETE FROM d_star_intervals WHERE suite = ?", [suite])
            if rows:
                con.executemany(f"INSERT INTO d_star_intervals ({', '.join(cols)}, computed_at) "
                                f"VALUES ({', '.join('?' * len(cols))}, now())", [[suite, *r] for r in rows])
            acols = ("suite", "model", "model_params", "dataset", "dataset_params", "method", "params", "label",
                     "metric", "epsilon", "D", "seeds", "exact", "censored", "non_monotone", "mean_d_s", "sd_d_s",
                     "w2", "w2_lo", "w2_hi", "confidence", "evidence", "note")
            con.execute("DELETE FROM angular_dimension WHERE suite = ?", [suite])
            if angular:
                con.executemany(f"INSERT INTO angular_dimension ({', '.join(acols)}, computed_at) "
                                f"VALUES ({', '.join('?' * len(acols))}, now())", [[suite, *r] for r in angular])
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
        """Run one reading statement (a SELECT, incl. DESCRIBE, SHOW, SUMMARIZE) on a read connection
        (:meth:`read`); return (columns, rows). Anything else is refused in one line."""
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise DofbenchError(f"query failed: {_one_line_db_error(exc)}") from None
        if len(statements) != 1:
            raise DofbenchError(f"query: exactly one statement is allowed, got {len(statements)}")
        kind = statements[0].type.name
        if kind not in QUERY_STATEMENTS:
            raise DofbenchError(f"query: only a SELECT can run here, not {kind}: queries read the store and "
                                "nothing else (they cannot write, attach, load extensions or change settings)")
        with self.read() as con:
            try:
                cur = con.execute(sql, params or [])
            except duckdb.Error as exc:
                raise DofbenchError(f"query failed: {_one_line_db_error(exc)}") from None
            if cur.description is None:
                return [], []
            return [c[0] for c in cur.description], cur.fetchall()


MEMBER_COLUMNS = ("model", "model_params", "dataset", "dataset_params", "method", "params", "label", "d", "seed")


def _member(spec: dict[str, Any] | None) -> list[Any]:
    """The :data:`MEMBER_COLUMNS` of a suite member from its resolved trial spec (None: unknown)."""
    if spec is None:
        return [None] * len(MEMBER_COLUMNS)
    mp, dp, pp, label = _resolution(spec)
    return [spec["model"]["name"], mp, spec["dataset"]["name"], dp, spec["method"]["name"], pp, label,
            spec["d"], spec["seed"]]


def _resolution(spec: dict[str, Any] | None) -> list[str | None]:
    """(model_params, dataset_params, params, label) of a resolved trial spec, as stored."""
    if spec is None:
        return [None] * 4
    return [canonical_json(spec["model"]["params"]), canonical_json(spec["dataset"]["params"]),
            canonical_json(spec["method"]["params"]), method_label(spec)]


def component_label(spec: dict[str, Any], kind: str) -> str:
    """'name' or 'name[k=v,…]' with the params of the spec's ``kind`` (model, dataset, method) that
    differ from their defaults."""
    return identity_label(spec[kind]["name"], (spec.get("identity") or {}).get(kind))


def method_label(spec: dict[str, Any]) -> str:
    """'name' or 'name[k=v,…]' with the method params that differ from their defaults."""
    return component_label(spec, "method")


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


def _owner_is_dead(owner: str) -> bool:
    """Whether a claim's owner (:meth:`Store.claim_owner`) is a process of this machine that no
    longer runs (a driver on another machine is judged by its heartbeat alone)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False
