"""``python -m perf protocol``: the plain loop's lower bound for a suite's protocol — its sum over
the suite's d interpolates the measured costs, and a smoke run prints the estimate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_the_cost_between_measured_d_is_linear_and_flat_outside(repo_root, monkeypatch):
    monkeypatch.syspath_prepend(str(repo_root))
    from perf.bench_protocol import _interpolate

    cost = {4: 40.0, 1024: 60.0, 4096: 100.0}
    assert _interpolate(cost, 4) == 40.0 and _interpolate(cost, 1024) == 60.0
    assert _interpolate(cost, 2) == 40.0 and _interpolate(cost, 8192) == 100.0
    assert _interpolate(cost, 514) == pytest.approx(50.0)
    assert _interpolate(cost, 2560) == pytest.approx(80.0)


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
