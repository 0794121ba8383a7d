"""The shape of the code: the plugin surface, SQL only in the results package, no plugin names in
the core (import-linter checks the layers: `lint-imports`, run by `make test`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "dofbench"
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT INTO|DELETE FROM|CREATE (OR REPLACE )?(TABLE|VIEW)|ALTER (TABLE|VIEW)|"
                 r"UPDATE \w+ SET|DROP (TABLE|VIEW))\b", re.S)


def _imports(source: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def _strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def _doc_python_blocks() -> list[tuple[str, str]]:
    """(file, block) of every python block of the README and docs/*.md, and every code cell of the
    example notebooks."""
    import json

    out = [(p.name, block) for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
           for block in re.findall(r"```python\n(.*?)```", p.read_text(), re.S)]
    for nb in sorted((ROOT / "examples").glob("*.ipynb")):  # and the example notebooks' code cells
        cells = json.loads(nb.read_text())["cells"]
        out += [(nb.name, "".join(c["source"])) for c in cells if c["cell_type"] == "code"]
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "plugins").glob("*.py")), ids=lambda p: p.name)
def test_builtin_plugins_import_dofbench_only_through_the_plugin_surface(path):
    dofbench = [m for m in _imports(path.read_text()) if m == "dofbench" or m.startswith("dofbench.")]
    assert all(m == "dofbench.plugin" for m in dofbench), dofbench


def test_documented_examples_import_dofbench_only_through_the_plugin_surface_or_the_session():
    blocks = _doc_python_blocks()
    assert {name for name, _ in blocks} >= {"README.md", "plugins.md", "usage.md", "quickstart.ipynb"}
    for name, block in blocks:
        mods = [m for m in _imports(block) if m.startswith("dofbench")]
        assert set(mods) <= {"dofbench", "dofbench.plugin"}, (name, mods)


def test_every_sql_statement_lives_in_the_results_package():
    found = [(str(p.relative_to(ROOT)), line) for p in CORE.rglob("*.py") if "results" not in p.parts
             for line, text in _strings(p) if SQL.search(text)]
    assert found == []
    assert any(SQL.search(text) for _, text in _strings(CORE / "results" / "store.py"))  # the check can see SQL


def test_the_core_names_no_plugin_component():
    """Roles are declarations on components (a baseline method, a task loss, a quadratic well),
    not names the core recognises. The exceptions are migrations 5 and 9, which mark the baselines
    and yardsticks of stores written when the only ones were the built-in `full` and
    `random-subspace`."""
    from dofbench.run.host import Host

    host = Host(use_env=False)
    names = {n for kind in ("model", "dataset", "method", "metric") for n in host.names(kind)}
    assert {"full", "random-subspace", "acc", "loss", "quadratic-well"} <= names
    found = [(str(p.relative_to(ROOT)), line, text) for p in CORE.rglob("*.py") if p.name != "migrations.py"
             for line, text in _strings(p)
             if text in names or names & set(re.findall(r"'([A-Za-z0-9_-]+)'", text)) - {"gpu"}]
    found = [f for f in found if "e.g." not in f[2]]  # help text giving an example
    assert found == []
