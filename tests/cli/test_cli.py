"""Every CLI command, error handling without tracebacks, and the README's plugin example."""

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


def _readme_blocks(repo_root):
    text = (repo_root / "README.md").read_text()
    section = text[text.index("## Writing a plugin"):]
    py = re.search(r"```python\n(# coordinate_plugin.py\n.*?)```", section, re.S).group(1)
    toml = re.search(r"```toml\n(\[suites.coords\].*?)```", section, re.S).group(1)
    return py, toml


@pytest.mark.slow
def test_readme_plugin_example_runs_from_outside_the_repo(tmp_path, run_cli, repo_root):
    py, toml = _readme_blocks(repo_root)
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
