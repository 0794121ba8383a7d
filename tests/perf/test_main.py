"""``python -m perf``: the anchor by default, the others by name, a bad name refused."""

from __future__ import annotations

import subprocess
import sys


def _run(repo_root, *args):
    return subprocess.run([sys.executable, "-m", "perf", *args], cwd=repo_root, capture_output=True,
                          text=True, timeout=120)


def test_the_default_is_the_anchor_and_others_are_named(repo_root):
    out = _run(repo_root, "--help")
    assert out.returncode == 0 and "default: anchor" in out.stdout
    for name in ("anchor", "subspace", "executors", "nested", "adaptive", "protocol"):
        assert name in out.stdout


def test_an_unknown_benchmark_is_refused_with_the_names(repo_root):
    out = _run(repo_root, "nope")
    assert out.returncode == 2 and "unknown benchmark(s) nope" in out.stderr and "anchor" in out.stderr
