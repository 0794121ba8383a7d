"""The read-only door: `dofbench query` (and every other read path) can read the store and nothing
else. Each escape attempt is refused in one line with exit code 1; the store stays byte-identical
and no file appears anywhere we can look (the working directory, the store's directory, the temp
directory, DuckDB's extension and secret directories)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from dofbench.errors import DofbenchError
from dofbench.results.store import Store


@pytest.fixture(scope="module")
def _store_files(tmp_path_factory, synthetic_result):
    """The files every test starts from, written once: a small store and another DuckDB file."""
    d = tmp_path_factory.mktemp("template")
    store = Store(d / "r.duckdb")
    r = synthetic_result("m", 4, 0, 0.5)
    store.write_result(r, "s")
    store.register_suite("s", "", {}, "t", [r.trial_id], "train_acc", [0.3], 0.1, True)
    con = duckdb.connect(str(d / "other.duckdb"))
    con.execute("CREATE TABLE o AS SELECT 1 AS a")
    con.close()
    return d


@pytest.fixture
def store_dir(tmp_path, _store_files, monkeypatch):
    """A copy of the small store and the other DuckDB file, a hard and a symbolic link to the
    store, a SQLite file; the working directory is the store's directory."""
    d = tmp_path / "s"
    d.mkdir()
    (tmp_path / "outside").mkdir()
    for name in ("r.duckdb", "other.duckdb"):
        shutil.copyfile(_store_files / name, d / name)
    os.link(d / "r.duckdb", d / "hard.duckdb")
    os.symlink(d / "r.duckdb", d / "soft.duckdb")
    (d / "x.sqlite").write_bytes(b"SQLite format 3\0" + b"\0" * 84)
    monkeypatch.chdir(d)
    return d


def _snapshot(d: Path) -> dict:
    """Every file below the test's directory (the store's directory is the working directory, and
    `outside` the target of absolute paths) and below DuckDB's home directory, with content hashes."""
    out = {}
    for place in (d.parent, Path.home() / ".duckdb"):
        for p in place.rglob("*") if place.exists() else []:
            try:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else "dir"
            except OSError:
                out[str(p)] = "unreadable"
    return out


ESCAPES = [
    # writes to files
    "COPY trials TO 'out.csv'",
    "COPY (SELECT 1 AS a) TO 'out.parquet' (FORMAT parquet)",
    "COPY trials TO '{outside}/escaped.json' (FORMAT json)",
    "EXPORT DATABASE 'exported'",
    "SELECT * FROM query('COPY trials TO ''viaquery.csv''')",
    # writes to the store
    "CREATE TABLE x AS SELECT 1 AS a",
    "INSERT INTO trials SELECT * FROM trials",
    "DELETE FROM trials",
    "DROP TABLE trials",
    "UPDATE trials SET status = 'failed'",
    "ALTER TABLE trials ADD COLUMN x INTEGER",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TEMP TABLE t AS SELECT 1",
    "CHECKPOINT",
    "VACUUM",
    # other databases, in every mode
    "ATTACH 'other.duckdb' AS o",
    "ATTACH 'other.duckdb' AS o (READ_WRITE)",
    "ATTACH '{store}' AS again (READ_WRITE)",
    "ATTACH 'hard.duckdb' AS h (READ_WRITE)",
    "ATTACH 'soft.duckdb' AS s (READ_WRITE)",
    "ATTACH ':memory:' AS m",
    "ATTACH 'new.duckdb' AS n",
    "ATTACH 'x.sqlite' (TYPE sqlite)",
    "DETACH DATABASE r",
    "USE other",
    # extensions
    "INSTALL httpfs",
    "FORCE INSTALL json",
    "LOAD httpfs",
    "SELECT * FROM read_csv_auto('https://example.invalid/x.csv')",
    "SELECT * FROM 'other.duckdb'",
    # settings (and what they would switch on)
    "SET log_query_path = 'queries.log'",
    "PRAGMA enable_profiling = 'json'",
    "SET profiling_output = 'profile.json'",
    "SET temp_directory = 'spill'",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "SET allow_unsigned_extensions = true",
    "PRAGMA memory_limit = '1GB'",
    "CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')",
    "CALL pragma_version()",
    "EXPLAIN ANALYZE COPY trials TO 'explained.csv'",
    # several statements
    "SELECT 1; COPY trials TO 'second.csv'",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("sql", ESCAPES)
def test_query_refuses_every_escape_in_one_line(store_dir, sql, invoke):
    db = store_dir / "r.duckdb"
    sql = sql.format(store=db, outside=store_dir.parent / "outside")
    before_store, before = db.read_bytes(), _snapshot(store_dir)
    res = invoke("query", sql, "--db", str(db))
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in res.stderr, res.stderr
    assert db.read_bytes() == before_store
    assert _snapshot(store_dir) == before


def test_the_python_read_path_refuses_them_too(store_dir):
    store = Store(store_dir / "r.duckdb")
    before = (store_dir / "r.duckdb").read_bytes()
    for sql in ESCAPES:
        with pytest.raises(DofbenchError):
            store.query(sql.format(store=store.path, outside=store_dir.parent / "outside"))
    assert (store_dir / "r.duckdb").read_bytes() == before
    assert store.query("SELECT count(*) FROM trials")[1] == [(1,)]  # and reading still works


def test_reads_that_are_queries_still_work(store_dir, invoke):
    db = str(store_dir / "r.duckdb")
    for sql in ["SELECT count(*) AS n FROM trials", "WITH x AS (SELECT 1 AS a) SELECT * FROM x", "DESCRIBE trials",
                "SHOW TABLES", "SUMMARIZE trials", "FROM leaderboard", "SELECT * FROM duckdb_settings() LIMIT 1"]:
        res = invoke("query", sql, "--db", db)
        assert res.exit_code == 0, (sql, res.stderr)


@pytest.mark.parametrize("target, message", [
    ("other.duckdb", "is not a dofbench store"),
    ("x.sqlite", "not a dofbench store (a SQLite database)"),
    ("garbage.bin", "not a dofbench store (not a DuckDB database)"),
    ("empty.duckdb", "not a dofbench store (empty)"),
    ("adir", "is a directory"),
    ("missing.duckdb", "no results store at"),
])
@pytest.mark.parametrize("command", [["query", "SELECT 1"], ["leaderboard"], ["compare"], ["plot", "phase"],
                                     ["report", "s", "--out", "rep"], ["show", "trial", "abc"]])
def test_a_file_that_is_not_a_store_is_named_and_left_alone(store_dir, target, message, command, invoke):
    (store_dir / "garbage.bin").write_bytes(os.urandom(64))
    (store_dir / "empty.duckdb").write_bytes(b"")
    (store_dir / "adir").mkdir()
    before = _snapshot(store_dir)
    res = invoke(*command, "--db", str(store_dir / target))
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert _snapshot(store_dir) == before  # nothing written, nothing downloaded


def test_run_refuses_a_file_that_is_not_a_store_before_writing(store_dir, tiny_config, invoke):
    for target, message in [("other.duckdb", "is a DuckDB database but not a dofbench store"),
                            ("x.sqlite", "a SQLite database")]:
        before = _snapshot(store_dir)
        res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(store_dir / target),
                     "--executor", "local")
        assert res.exit_code == 1 and message in res.stderr, res.stderr
        assert _snapshot(store_dir) == before
