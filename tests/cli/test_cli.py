"""Every CLI command, error handling without tracebacks, option placement, table widths, and a plugin
from the docs through the real entry point."""

import json
import re

import pytest



def test_run_query_leaderboard_end_to_end(tiny_config, db, invoke):
    res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--no-progress", "--executor", "local")
    assert res.exit_code == 0, res.output + res.stderr
    assert "d_star" in res.output and "random-subspace" in res.output
    assert "ran 4 (4 ok" in res.stderr
    res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--executor", "local")
    assert "4 already stored, ran 0" in res.stderr
    res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--force", "--executor", "local")
    assert "ran 4" in res.stderr

    res = invoke("query", "select d, epsilon, p_success from success order by epsilon, d", "--db", str(db), "--format", "json")
    rows = json.loads(res.output)
    assert [r["d"] for r in rows] == [2, 64, 2, 64]
    res = invoke("leaderboard", "--db", str(db), "--suite", "tiny", "--format", "csv")
    assert res.output.splitlines()[0].startswith("suite,model,dataset,method,metric,epsilon,delta,d_star")
    res = invoke("leaderboard", "--db", str(db), "--format", "markdown")
    assert res.output.startswith("| suite |")

    res = invoke("query", "drop table trials", "--db", str(db))
    assert res.exit_code == 1 and res.stderr.startswith("Error: query: only a SELECT can run here, not DROP")
    assert "Traceback" not in res.stderr
    assert json.loads(invoke("query", "select count(*) as n from trials", "--db", str(db), "--format", "json").output) == [{"n": 4}]


def test_dry_run_writes_nothing(tiny_config, db, invoke):
    res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--dry-run")
    assert res.exit_code == 0 and "tiny" in res.output
    assert not db.exists()


def test_validate_list_show_plugins(tiny_config, invoke):
    res = invoke("validate", str(tiny_config))
    assert res.exit_code == 0 and "tiny" in res.output and "D=826" in res.output
    res = invoke("validate")
    assert res.exit_code == 0 and "quick" in res.output
    res = invoke("list", "models", "--dataset", "mnist1d", "--json")
    assert {r["name"]: r["details"] for r in json.loads(res.output)}["mlp"] == "D=15210 on mnist1d"
    res = invoke("list", "datasets")
    assert "mnist1d" in res.output and "(40,)" in res.output
    res = invoke("list", "gizmos")
    assert res.exit_code == 1 and "unknown kind 'gizmos'; allowed: models, datasets" in res.stderr
    res = invoke("show", "method", "random-subspace", "--json")
    params = {p["name"]: p for p in json.loads(res.output)["params"]}
    assert params["optimizer"]["default"] == "paper-adam" and "constant bias" in params["optimizer"]["description"]
    res = invoke("show", "method", "nope")
    assert res.exit_code == 1 and re.search(r"unknown method 'nope'; available: .*full, .*random-subspace", res.stderr)
    res = invoke("plugins")
    assert res.exit_code == 0 and "subspace" in res.output


BAD_SUITES = [
    (lambda t: t + "\n[[[", "malformed TOML"),
    (lambda t: t.replace('name = "mlp"', 'name = "mlpx"'), "unknown model 'mlpx'; available:"),
    (lambda t: t.replace("seeds    = 2", 'seeds = "two"'), "suites.tiny.seeds"),
    (lambda t: t.replace("dims     = [2, 64]", "dims = [0]"), "suites.tiny.dims[0]: Input should be greater than or equal to 1"),
    (lambda t: t.replace("dims     = [2, 64]", "dims = [100000]"), "exceeds the limit 826"),
]


@pytest.mark.parametrize("edit,message", BAD_SUITES)
def test_bad_input_one_line_and_nothing_stored(tiny_config, db, edit, message, invoke):
    tiny_config.write_text(edit(tiny_config.read_text()))
    res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db))
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.stderr
    assert not db.exists()


@pytest.mark.parametrize("edit,message", [BAD_SUITES[0], *[pytest.param(*b, marks=pytest.mark.slow) for b in BAD_SUITES[1:]]])
def test_bad_input_subprocess_one_line_no_traceback(tiny_config, db, edit, message, run_cli):
    """The real console entry point: one line on stderr, exit code 1, no traceback."""
    tiny_config.write_text(edit(tiny_config.read_text()))
    proc = run_cli("run", "tiny", "--config", str(tiny_config), "--db", str(db))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], proc.stderr
    assert not db.exists()


def test_bad_input_leaves_the_store_unchanged(tiny_config, db, tmp_path, invoke):
    assert invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--executor", "local").exit_code == 0
    before = invoke("query", "select trial_id, train_acc from trials order by 1", "--db", str(db), "--format", "json").output
    bad = tmp_path / "bad.toml"
    bad.write_text(tiny_config.read_text().replace("hidden = [16]", "hidden = [16], wings = 2"))
    res = invoke("run", "tiny", "--config", str(bad), "--db", str(db))
    assert res.exit_code == 1 and "unknown key" in res.stderr
    assert invoke("query", "select trial_id, train_acc from trials order by 1", "--db", str(db), "--format", "json").output == before


COORDS = """
[suites.coords]
models   = [{ name = "mlp", params = { hidden = [32] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 1000 } }]
methods  = ["random-coordinates", "random-subspace"]
dims     = [16, 256]
seeds    = 2
train    = { epochs = 3 }
[suites.coords.threshold]
metric   = "best_train_acc"
epsilons = [0.2]
"""


@pytest.mark.slow
def test_the_docs_method_plugin_runs_from_outside_the_repo(tmp_path, run_cli, repo_root):
    """The real console entry point and its process pool, with the method of docs/plugins.md."""
    text = (repo_root / "docs" / "plugins.md").read_text()
    py, toml = re.search(r"```python\n(# coordinate_plugin.py\n.*?)```", text, re.S).group(1), COORDS
    plugdir = tmp_path / "elsewhere"
    plugdir.mkdir()
    (plugdir / "coordinate_plugin.py").write_text(py)
    (plugdir / "coords.toml").write_text(toml)
    db = plugdir / "r.duckdb"
    env = {"DOFBENCH_PLUGINS": str(plugdir / "coordinate_plugin.py")}
    proc = run_cli("run", "coords", "--config", "coords.toml", "--db", str(db), env=env, cwd=plugdir)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("query", "select method, d, status, method_info from trials order by method, d",
                   "--db", str(db), "--format", "json", cwd=plugdir)
    rows = json.loads(proc.stdout)
    coords = [r for r in rows if r["method"] == "random-coordinates"]
    assert [r["d"] for r in coords] == [16, 16, 256, 256] and all(r["status"] == "ok" for r in coords)
    assert json.loads(coords[0]["method_info"]) == {"coordinates": 16}
    proc = run_cli("--plugin", "coordinate_plugin.py", "show", "method", "random-coordinates", cwd=plugdir)
    assert proc.returncode == 0 and "Learning rate" in proc.stdout


def test_list_suites_with_descriptions_and_trial_counts(tiny_config, db, invoke):
    res = invoke("list", "suites", env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.stderr
    lines = res.output.splitlines()
    assert lines[0].split() == ["suite", "trials", "description"]  # no store: no `stored` column
    assert re.search(r"^quick\s+45\s+MLP on MNIST-1D", res.output, re.M)
    assert re.search(r"^quick-methods\s+135\s+", res.output, re.M)
    assert max(len(line) for line in lines) <= 100
    assert invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--executor", "local",
                  "--max-trials", "3").exit_code == 0
    res = invoke("list", "suites", "--config", str(tiny_config), "--db", str(db), "--json")
    assert json.loads(res.output) == [{"suite": "tiny", "trials": 4, "stored": 2,  # a budget starts whole groups
                                       "description": "tiny MLP on a small MNIST-1D"}]


def test_run_without_a_suite_lists_them(tiny_config, invoke):
    res = invoke("run", "--config", str(tiny_config))
    assert res.exit_code == 2
    assert res.output.splitlines()[2].startswith("tiny ") and "tiny MLP on a small MNIST-1D" in res.output
    assert "name one or more suites: dofbench run SUITE…" in res.stderr and "dofbench list suites" in res.stderr


def test_plugin_and_db_before_or_after_the_subcommand(tmp_path, tiny_config, db, invoke):
    plugin = tmp_path / "extra_metric.py"
    plugin.write_text("from dofbench.plugin import FunctionMetric, hookimpl\n\n\n@hookimpl\ndef dofbench_metrics():\n"
                      "    return [FunctionMetric(name='zero', fn=lambda o, t: o.sum() * 0, description='zero')]\n")
    for args in (("--plugin", str(plugin), "show", "metric", "zero"), ("show", "metric", "zero", "--plugin", str(plugin)),
                 ("show", "--plugin", str(plugin), "metric", "zero")):
        res = invoke(*args)
        assert res.exit_code == 0 and "metric zero" in res.output, (args, res.stderr)
    assert invoke("run", "tiny", "--config", str(tiny_config), "--executor", "local", "--db", str(db)).exit_code == 0
    before = invoke("--db", str(db), "leaderboard", "--format", "json")
    after = invoke("leaderboard", "--db", str(db), "--format", "json")
    assert before.exit_code == after.exit_code == 0 and before.output == after.output and json.loads(before.output)
    both = invoke("--db", str(tmp_path / "elsewhere.duckdb"), "query", "select count(*) as n from trials",
                  "--db", str(db), "--format", "json")  # the subcommand's wins
    assert json.loads(both.output) == [{"n": 4}]
    assert invoke("--db", str(db), "compare", "--suite", "tiny").exit_code == 0


@pytest.mark.parametrize("args", [("list", "methods"), ("list", "models"), ("list", "datasets"), ("plugins",),
                                  ("validate",), ("list", "suites")])
def test_tables_fit_100_columns_and_wide_shows_everything(args, invoke):
    res = invoke(*args, env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.stderr
    assert max(len(line) for line in res.output.splitlines()) <= 100, res.output
    wide = invoke(*args, "--wide", env={"COLUMNS": "100"})
    assert wide.exit_code == 0
    cut = res.output.count("…") - wide.output.count("…")  # (a description may hold a … of its own)
    assert cut >= 0
    if cut:
        assert max(len(line) for line in wide.output.splitlines()) > 100


def test_leaderboard_and_plan_fit_100_columns(tiny_config, db, invoke):
    res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--executor", "local",
                 env={"COLUMNS": "100"})
    assert res.exit_code == 0 and max(len(line) for line in res.output.splitlines()) <= 100
    assert "d_star_hi" not in res.output  # empty in every row: left out
    plan = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), "--dry-run", "--format", "markdown")
    head = plan.output.splitlines()[0]
    assert head == "| suite | model | dataset | D | methods | dims | seeds | trials | to_run |"
    assert "| tiny | mlp[hidden=[16]] | mnist1d[num_samples=600] | 826 | 1 | 2 | 2 | 4 | 0 |" in plan.output


def test_progress_shows_the_eta(tiny_config, db, capsys):
    from dofbench import Session

    Session(db=db, config=tiny_config).run(["tiny"], executor="local", progress=True)
    err = capsys.readouterr().err
    assert re.search(r"tiny: +\d+%\|.*\| [1-4]/4 trials \[\d\d:\d\d elapsed, ETA \d\d:\d\d\]", err), err


def test_a_plugin_command_without_the_shared_options_says_where_they_go(tmp_path, invoke):
    plugin = tmp_path / "hello_plugin.py"
    plugin.write_text("import click\nfrom dofbench.plugin import hookimpl\n\n\n@hookimpl\ndef dofbench_commands(cli):\n"
                      "    @cli.command('hello')\n    def hello():\n        click.echo('hi')\n")
    assert invoke("--plugin", str(plugin), "hello").output == "hi\n"
    res = invoke("--plugin", str(plugin), "hello", "--db", "x.duckdb")
    assert res.exit_code == 2 and "this command takes --db before it: dofbench --db VALUE COMMAND" in res.stderr
