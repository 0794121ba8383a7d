"""The documentation runs as printed: every plugin example of docs/plugins.md (a dataset, a model,
a metric, a method and the suite using them, with the commands shown), every query of
docs/store.md; and no file of the project links outside it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.S)


def named_blocks(path: Path) -> dict[str, str]:
    """The code blocks whose first line names their file (``# blobs_plugin.py``)."""
    out = {}
    for lang in ("python", "toml"):
        for text in blocks(path, lang):
            m = re.match(r"# ([\w.-]+\.(py|toml))\n", text)
            if m:
                out[m.group(1)] = text
    return out


def commands(bash: str) -> list[str]:
    """The lines of a bash block as commands (a quoted string may span lines), comments dropped."""
    out, cur = [], ""
    for line in bash.splitlines():
        cur = f"{cur}\n{line}" if cur else line
        try:
            shlex.split(cur, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if cur.strip():
            out.append(cur)
        cur = ""
    return out


def test_plugins_md_has_a_complete_example_of_each_kind():
    named = named_blocks(DOCS / "plugins.md")
    assert set(named) >= {"blobs_plugin.py", "conv1d_plugin.py", "calibration_plugin.py", "coordinate_plugin.py",
                          "my-suites.toml"}
    hooks = {"blobs_plugin.py": "dofbench_datasets", "conv1d_plugin.py": "dofbench_models",
             "calibration_plugin.py": "dofbench_metrics", "coordinate_plugin.py": "dofbench_methods"}
    for name, hook in hooks.items():
        assert f"def {hook}():" in named[name]


@pytest.mark.slow
def test_the_plugin_examples_and_their_commands_run_as_printed(tmp_path, monkeypatch, invoke, one_thread):
    pytest.importorskip("torchmetrics")
    named = named_blocks(DOCS / "plugins.md")
    for name, text in named.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "docs.duckdb"
    env = {"DOFBENCH_DB": str(db)}
    # the bash block of "A suite that uses all four", line by line, through the CLI in this process
    bash = next(b for b in blocks(DOCS / "plugins.md", "bash") if "export DOFBENCH_PLUGINS" in b)
    outputs = {}
    for cmd in commands(bash):
        words = shlex.split(cmd.replace("$PWD", str(tmp_path)), comments=True)
        if words[0] == "export":
            key, value = words[1].split("=", 1)
            env[key] = value
            continue
        assert words[0] == "dofbench", cmd
        args = words[1:]
        if args[0] == "run":
            args += ["--executor", "local"]  # one process: the test's own torch thread
        res = invoke(*args, env=env)
        assert res.exit_code == 0, (cmd, res.stderr)
        outputs[args[0] + (" " + args[1] if args[0] in ("list", "show") else "")] = res.output
    assert "blobs_plugin" in outputs["plugins"] and "ERROR" not in outputs["plugins"]
    assert "Learning rate of the paper's Adam" in outputs["show method"]
    assert re.search(r"conv1d .*D=180 on blobs", outputs["list models"])
    assert "Against random-subspace" in outputs["compare"]
    # every trial of the suite: ok, with the plugin metrics stored
    from dofbench import Session

    rows = Session(db=db, use_env=False).query("select model, method, status, metrics from trials").records()
    assert len(rows) == 2 * 2 * 3 * 2 and {r["status"] for r in rows} == {"ok"}
    assert {r["model"] for r in rows} == {"conv1d", "mlp"} and {r["method"] for r in rows} == {
        "random-coordinates", "random-subspace"}
    for r in rows:
        m = json.loads(r["metrics"])
        assert 0 <= m["best_test_ece"] <= 1 and m["train_top2"] >= m["train_acc"]


def test_the_store_queries_run_on_a_store(tmp_path, synth_store):
    """On a copy of the synthetic suite's store (its suite, 'synth', named 'quick' in the docs)."""
    import shutil

    from dofbench import Session
    from dofbench.results.store import Store

    shutil.copy(synth_store.path, tmp_path / "store.duckdb")
    store = Store(tmp_path / "store.duckdb")
    store.write_run("synth", started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:01:00+00:00",
                    wall_s=60.0, executor="process", workers=2, trials=40, skipped=0, ok=40, diverged=0, failed=0,
                    compute_s=115.0)
    s = Session(db=store.path, use_env=False)
    queries = blocks(DOCS / "store.md", "sql")
    assert len(queries) >= 8
    for sql in queries:
        assert "'quick'" in sql or "suite =" not in sql, sql
        table = s.query(sql.replace("'quick'", "'synth'"))
        assert len(table) > 0, sql


def _tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist): every file here
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    out = []
    for name in names:
        p = ROOT / name
        if p.suffix in (".md", ".py", ".toml", ".sql", ".ipynb", ".txt", ".cfg") or p.name in ("Makefile", "run"):
            out.append(p)
    return out


def test_no_file_of_the_project_links_outside_it():
    """Markdown links resolve to files of the project; nothing points at a sibling checkout."""
    bad = []
    for p in _tracked_text_files():
        if p == Path(__file__):
            continue
        text = p.read_text(errors="replace")
        for m in re.finditer(r"\.\./shared|/work/|shared/reference", text):
            bad.append((str(p.relative_to(ROOT)), m.group(0)))
        if p.suffix == ".md":
            prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))  # code is not a link
            for target in re.findall(r"\]\(([^)\s]+)\)", prose):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue  # a URL or an anchor on the same page
                resolved = (p.parent / target.split("#")[0]).resolve()
                if ROOT not in resolved.parents or not resolved.exists():
                    bad.append((str(p.relative_to(ROOT)), target))
    assert bad == []
