"""Bad input of every kind — suite files, CLI options, stores, registry files, plugins — ends in one
line naming the field (or file) and what is allowed, a non-zero exit code, no traceback, and the
store exactly as it was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TINY = (Path(__file__).parents[1] / "data" / "tiny.toml").read_text()
RAND = '{ name = "random-subspace" }'

SUITE_EDITS = [  # (how the tiny suite is broken, what the one line must say)
    (lambda t: t + "\n[[[", "malformed TOML"),
    (lambda t: t.replace('name = "mlp"', 'name = "mlpx"'), "suites.tiny.models[0].name: unknown model 'mlpx'"),
    (lambda t: t.replace('name = "mnist1d"', 'name = "mnist2d"'), "suites.tiny.datasets[0].name: unknown dataset"),
    (lambda t: t.replace(RAND, '"random-subspaces"'), "suites.tiny.methods[0].name: unknown method"),
    (lambda t: t.replace("seeds    = 2", "seeds = 2\nwarmup = 1"), "suites.tiny.warmup: unknown key"),
    (lambda t: t.replace("hidden = [16]", "hidden = [16], wings = 2"), "suites.tiny.models[0].params.wings: unknown key"),
    (lambda t: t.replace("hidden = [16]", 'hidden = "wide"'), "suites.tiny.models[0].params.hidden"),
    (lambda t: t.replace("batch_size = 64", 'batch_size = "64"'), "suites.tiny.train.batch_size: Input should be a valid integer"),
    (lambda t: t.replace("seeds    = 2", "seeds = true"), "suites.tiny.seeds: Input should be a valid integer"),
    (lambda t: t.replace(RAND, '{ name = "random-subspace", params = { lr = "0.1" } }'),
     "suites.tiny.methods[0].params.lr: Input should be a valid number"),
    (lambda t: t.replace(RAND, '{ name = "random-subspace", params = { lr = nan } }'),
     "suites.tiny.methods[0].params.lr: Input should be a finite number"),
    (lambda t: t.replace("epsilons = [0.12, 0.99]", "epsilons = [0.12, inf]"), "suites.tiny.threshold.epsilons[1]: Input should be a finite number"),
    (lambda t: t.replace("epsilons = [0.12, 0.99]", "epsilons = [0.12, 1.5]"), "epsilons[1]: 1.5 is outside [0, 1]"),
    (lambda t: t.replace("delta    = 0.1", "delta = 1.5"), "suites.tiny.threshold.delta: Input should be less than 1"),
    (lambda t: t.replace("delta    = 0.1", "delta = 0"), "suites.tiny.threshold.delta: Input should be greater than 0"),
    (lambda t: t.replace("seeds    = 2", "seeds = []"), "suites.tiny.seeds: List should have at least 1 item"),
    (lambda t: t.replace("seeds    = 2", "seeds = [1, 1]"), "suites.tiny.seeds: seed 1 appears twice"),
    (lambda t: t.replace("seeds    = 2", "seeds = [-1]"), "suites.tiny.seeds[0]: Input should be greater than or equal to 0"),
    (lambda t: t.replace("seeds    = 2", "seeds = 3000000000"), "suites.tiny.seeds: Input should be less than or equal to 2147483647"),
    (lambda t: t.replace("dims     = [2, 64]", "dims = []"), "suites.tiny.dims: List should have at least 1 item"),
    (lambda t: t.replace("dims     = [2, 64]", "dims = [2, 2]"), "suites.tiny.dims: d=2 appears twice"),
    (lambda t: t.replace("dims     = [2, 64]", "dims = [0]"), "suites.tiny.dims[0]: Input should be greater than or equal to 1"),
    (lambda t: t.replace("dims     = [2, 64]", "dims = [100000]"), "suites.tiny.dims: d=100000 exceeds the limit 826"),
    (lambda t: t.replace(RAND, '{ name = "random-subspace", params = { dense_budget_gb = 1e-6 } }'),
     "suites.tiny.methods[0].params: projection: a dense 826×2 matrix needs"),
    (lambda t: t.replace('metric   = "best_train_acc"', 'metric = "best_valid_acc"'), "suites.tiny.threshold.metric: unknown metric"),
    (lambda t: t.replace("epsilons = [0.12, 0.99]", "epsilons = []"), "suites.tiny.threshold.epsilons: List should have at least 1 item"),
    (lambda t: t.replace("epsilons = [0.12, 0.99]", "epsilons = [0.5, 0.5]"), "suites.tiny.threshold.epsilons: ε=0.5 appears twice"),
    (lambda t: t + "\n[x" + ".x" * 1000 + "]\n", "nested"),
    (lambda t: t.replace("seeds    = 2", "seeds = 1000000"), "the suite expands to 2,000,000 trials"),
]


@pytest.fixture(scope="module")
def _stored_once(tmp_path_factory, invoke):
    d = tmp_path_factory.mktemp("stored")
    (d / "tiny.toml").write_text(TINY)
    db = d / "r.duckdb"
    res = invoke("run", "tiny", "--config", str(d / "tiny.toml"), "--db", str(db), "--executor", "local")
    assert res.exit_code == 0, res.stderr
    return db.read_bytes()


@pytest.fixture
def stored(tmp_path, _stored_once):
    """A store with the tiny suite already run (a copy per test): bad input must leave it byte for byte."""
    db = tmp_path / "r.duckdb"
    db.write_bytes(_stored_once)
    return db


def _one_line_error(res, must_say: str) -> None:
    assert res.exit_code != 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ") and must_say in lines[0] and "Traceback" not in res.stderr, lines[0]


@pytest.mark.parametrize("edit, must_say", SUITE_EDITS, ids=[f"suite{i}" for i in range(len(SUITE_EDITS))])
def test_bad_suite_files(stored, tmp_path, edit, must_say, invoke):
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(TINY))
    before = stored.read_bytes()
    for command in (["run", "tiny", "--config", str(bad), "--db", str(stored), "--executor", "local"],
                    ["run", "tiny", "--config", str(bad), "--db", str(stored), "--dry-run"]):
        _one_line_error(invoke(*command), must_say)
    assert invoke("validate", str(bad)).exit_code == 1
    assert stored.read_bytes() == before


def _plugin(tmp_path, body: str, name: str = "plug") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return str(path)


OPTION_CASES = [  # (extra arguments of run, what the line must say)
    (["--config", "/dev/zero"], "--config /dev/zero: not a regular file"),
    (["--config", "{tmp}"], "not a regular file"),
    (["--config", "{tmp}/none.toml"], "--config {tmp}/none.toml: no such file"),
    (["--config", "{tmp}/latin1.toml"], "not UTF-8 text"),
    (["--suite-name", "nope"], "unknown suite 'nope'"),
    (["--device", "cuda:7"], "--device cuda:7: CUDA is not available on this machine; allowed: auto, cpu"),
    (["--device", "meta"], "--device meta: not a device this machine can train on; allowed: auto, cpu"),
    (["--device", "mps"], "--device mps: not a device this machine can train on"),
    (["--max-trials", "0"], "--max-trials: input should be greater than or equal to 1"),
    (["--time-budget", "soon"], "--time-budget 'soon': expected a positive duration"),
    (["--executor", "threads"], "--executor: unknown executor 'threads'"),
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler applies to --executor dask"),
    (["--workers", "0"], "Invalid value for '--workers'"),
    (["--db", "{tmp}"], "is a directory"),
    (["--db", "{tmp}/x.sqlite"], "not a dofbench store (a SQLite database)"),
    (["--db", "{tmp}/garbage.duckdb"], "not a dofbench store (not a DuckDB database)"),
    (["--db", "{tmp}/other.duckdb"], "is a DuckDB database but not a dofbench store"),
    (["--db", "{tmp}/truncated.duckdb"], "(is the file damaged or truncated?)"),
    (["--db", "/proc/dofbench.duckdb"], "cannot open results store /proc/dofbench.duckdb"),
    (["--plugin", "no_such_plugin_module"], "--plugin no_such_plugin_module: the plugin failed to load: ModuleNotFoundError"),
    (["--plugin", "{raises}"], "the plugin failed to load: RuntimeError: broken at import"),
    (["--plugin", "{exits}"], "the plugin failed to load: SystemExit: 3"),
    (["--plugin", "{interrupts}"], "the plugin failed to load: KeyboardInterrupt"),
    (["--plugin", "{noncomponent}"], "hook dofbench_methods returned 'not a method' (a str), not a Method"),
    (["env:DOFBENCH_PLUGINS=also_missing_module"], "DOFBENCH_PLUGINS also_missing_module: the plugin failed to load"),
    (["env:DOFBENCH_REGISTRY={tmp}/reg-nan"], "reg.toml: results[0] (id 'x').value: Input should be a finite number"),
    (["env:DOFBENCH_REGISTRY={tmp}/reg-key"], "reg.toml: results[0] (id 'x').valeu: unknown key"),
    (["env:DOFBENCH_REGISTRY={tmp}/reg-toml"], "reg.toml: malformed TOML"),
]


@pytest.fixture
def odd_files(tmp_path, stored):
    import duckdb

    (tmp_path / "latin1.toml").write_bytes("description = 'caf\xe9'\n".encode("latin-1"))
    (tmp_path / "x.sqlite").write_bytes(b"SQLite format 3\0" + b"\0" * 84)
    (tmp_path / "garbage.duckdb").write_bytes(os.urandom(200))
    con = duckdb.connect(str(tmp_path / "other.duckdb"))
    con.execute("CREATE TABLE mine AS SELECT 1 AS a")
    con.close()
    data = stored.read_bytes()
    (tmp_path / "truncated.duckdb").write_bytes(data[: len(data) // 3])
    entry = ('[[results]]\nid = "x"\ncitation = "c"\nmodel = "mlp"\ndataset = "mnist1d"\nD = 826\n'
             'method = "random-subspace"\nrule = "d_star"\nmetric = "best_train_acc"\nepsilon = 0.3\ndelta = 0.1\n')
    for name, text in (("reg-nan", entry + "value = nan\n"), ("reg-key", entry + "value = 3\nvaleu = 3\n"),
                       ("reg-toml", "[[results]\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "reg.toml").write_text(text)
    return {
        "tmp": str(tmp_path),
        "raises": _plugin(tmp_path, "raise RuntimeError('broken at import')\n", "raises"),
        "exits": _plugin(tmp_path, "import sys\nsys.exit(3)\n", "exits"),
        "interrupts": _plugin(tmp_path, "raise KeyboardInterrupt\n", "interrupts"),
        "noncomponent": _plugin(tmp_path, "from dofbench.plugin import hookimpl\n\n\n@hookimpl\ndef dofbench_methods():\n"
                                          "    return ['not a method']\n", "noncomponent"),
    }


@pytest.mark.parametrize("args, must_say", OPTION_CASES, ids=[f"option{i}" for i in range(len(OPTION_CASES))])
def test_bad_options_stores_registries_and_plugins(stored, tiny_config, odd_files, args, must_say, invoke):
    args = [a.format(**odd_files) for a in args]
    env = dict(a[4:].split("=", 1) for a in args if a.startswith("env:"))
    args = [a for a in args if not a.startswith("env:")]
    name = "tiny"
    if args[:1] == ["--suite-name"]:
        name, args = args[1], args[2:]
    command = ["run", name, "--config", str(tiny_config), "--db", str(stored), "--executor", "local"]
    for flag in ("--config", "--db", "--executor"):  # a case's own value replaces the default
        if flag in args:
            i = command.index(flag)
            del command[i:i + 2]
    if args[:1] == ["--plugin"]:  # an option of the root command: before the subcommand
        command, args = args + command, []
    before = stored.read_bytes()
    listing = sorted(os.listdir(odd_files["tmp"]))
    _one_line_error(invoke(*command, *args, env=env), must_say.format(**odd_files))
    assert stored.read_bytes() == before
    assert sorted(os.listdir(odd_files["tmp"])) == listing  # no store created anywhere


def test_two_plugin_files_of_one_name_the_second_is_refused_by_name(tmp_path, invoke):
    body = "from dofbench.plugin import hookimpl\n"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.py").write_text(body)
    res = invoke("--plugin", str(tmp_path / "a" / "same.py"), "--plugin", str(tmp_path / "b" / "same.py"),
                 "validate")
    _one_line_error(res, "a plugin named 'same' is already registered from")
    shutil.rmtree(tmp_path / "b")
