"""Trials per minute: `local` vs `process` (2 workers) vs a Dask `LocalCluster` (2 workers).

Runs a trimmed copy of the `quick` suite (same MLP [100, 100] on MNIST-1D, same method and
training settings, but dims 8, 32, 128, 512, 2 seeds and 5 epochs: 8 trials; set
``DOFBENCH_BENCH_FULL=1`` for the full `quick` suite, 40 trials × 20 epochs). Each executor runs
the suite twice on the same workers: "cold" includes starting the workers and their first-trial
costs, "warm" is the second pass (steady state). `local` is measured with torch's default thread
count and with one thread (what each pool worker uses). Throughput ratios are printed against
`local`; on a machine shared with other work they are noisy.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from dofbench.run.host import Host
from dofbench.run.grid import GridStrategy
from dofbench.run.scheduler import Scheduler, executor_for
from dofbench.run.resolve import resolve
from dofbench.results.store import Store
from dofbench.config.runtime import Runtime

TRIMMED = """
[suites.quick-trimmed]
description = "the quick suite, trimmed: 8 trials of 5 epochs"
models   = [{ name = "mlp", params = { hidden = [100, 100] } }]
datasets = ["mnist1d"]
methods  = [{ name = "random-subspace", params = { projection = "dense", optimizer = "paper-adam" } }]
dims     = [8, 32, 128, 512]
seeds    = 2
train    = { epochs = 5, batch_size = 128 }
[suites.quick-trimmed.threshold]
metric   = "best_train_acc"
epsilons = [0.2]
"""


def _measure(label: str, name: str, threads: int | None, suite, host: Host, tmp: Path) -> dict:
    runtime = Runtime(device="cpu", threads=threads)
    store = Store(tmp / f"{label}.duckdb")
    t0 = time.perf_counter()
    executor = executor_for(name, host, runtime, workers=2, options={})
    start_s = time.perf_counter() - t0
    try:
        walls = []
        for _ in range(2):
            summary = Scheduler(store, executor, force=True, progress=False).run(suite, GridStrategy(suite, host))
            assert summary.ok + summary.diverged == summary.total, summary.errors[:3]
            walls.append(summary.wall_s)
    finally:
        executor.close()
    n = suite_trials(suite)
    return {"label": label, "start_s": start_s, "cold": 60 * n / (start_s + walls[0]), "warm": 60 * n / walls[1]}


def suite_trials(suite) -> int:
    return len({t.trial_id for t in suite.trials})


def main() -> None:
    full = os.environ.get("DOFBENCH_BENCH_FULL") == "1"
    host = Host()
    before = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if full:
            [suite] = resolve(["quick"], None, host)
        else:
            (tmp / "suites.toml").write_text(TRIMMED)
            [suite] = resolve(["quick-trimmed"], tmp / "suites.toml", host)
        n = suite_trials(suite)
        print(f"suite {suite.name}: {n} trials; {os.cpu_count()} cores; torch default threads {before}")
        rows = []
        try:
            rows.append(_measure("local", "local", None, suite, host, tmp))
            torch.set_num_threads(1)
            rows.append(_measure("local, 1 thread", "local", 1, suite, host, tmp))
        finally:
            torch.set_num_threads(before)
        rows.append(_measure("process, 2 workers", "process", None, suite, host, tmp))
        try:
            import distributed  # noqa: F401

            rows.append(_measure("dask LocalCluster, 2 workers", "dask", None, suite, host, tmp))
        except ImportError:
            print("dask.distributed not installed: skipped (pip install 'dofbench[dask]')")
    base = rows[0]
    print(f"{'executor':30s} {'start s':>8s} {'cold trials/min':>16s} {'warm trials/min':>16s} {'warm × local':>13s}")
    for r in rows:
        print(f"{r['label']:30s} {r['start_s']:8.1f} {r['cold']:16.1f} {r['warm']:16.1f} {r['warm'] / base['warm']:13.2f}")


if __name__ == "__main__":
    main()
