"""``python -m perf protocol``: the plain loop's lower bound for a suite's protocol; a smoke run
prints the measured trials and the suite's estimate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_a_quick_run_prints_the_suites_estimate(repo_root, tmp_path):
    env = {**os.environ, "DOFBENCH_BENCH_QUICK": "1", "DOFBENCH_BENCH_SUITE": "fmnist-conv2",
           "DOFBENCH_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "perf", "protocol"], cwd=repo_root, capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "fmnist-conv2: 6 d × 3 seeds × 5 epochs" in lines[1]
    assert sum("one process" in x for x in lines) == 2 and sum(x.startswith("  2 at once") for x in lines) == 2
    assert "fmnist-conv2 on 2 workers: ≥ " in lines[-1] and " min at the rate of 2 at once" in lines[-1]
