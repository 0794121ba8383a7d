"""What a suite's protocol costs the plain loop here (`python -m perf protocol`): a lower bound.

The plain PyTorch trial (``perf/plain_loop.py``, channels-last inputs, no dofbench in the loop) of
Conv-2 on Fashion-MNIST trains one epoch at a few d, alone and then as two processes at once (both
cores busy, as a 2-worker run keeps them). Each time is scaled to the protocol (its epochs and
evaluations of the full train and test sets). The suite's time is then summed over its d and seeds
(cost interpolated linearly in d between the measured ones) and divided by the workers. Any
implementation of the protocol, dofbench's included (``python -m perf`` puts its trial at ≈ 1× the
plain loop's), needs at least this long on this machine.

Nothing is asserted. Environment: DOFBENCH_BENCH_SUITE (default paper-conv2-fmnist, from
benchmarks.toml), DOFBENCH_BENCH_DIMS (the d measured, default 4,1024,4096), DOFBENCH_BENCH_WORKERS
(default 2), DOFBENCH_BENCH_N (training images, default all 60,000 with the 10,000 test images; with N,
a stratified N and N/3 test images), DOFBENCH_BENCH_QUICK=1 (a smoke run: 1,500 images, d = 4 and 64).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import torch

from perf import plain_loop

ROOT = Path(__file__).resolve().parents[1]


def _data(n: int | None):
    """The suite's Fashion-MNIST as dofbench preprocesses it (centred), as CPU tensors."""
    from dofbench.config.runtime import Runtime
    from dofbench.engine.worker import Worker
    from dofbench.run.host import Host
    from dofbench.run.resolve import trial_spec

    host = Host(use_env=False)
    params = {} if n is None else {"subsample": n, "test_subsample": min(10_000, max(n // 3, 1))}
    spec = trial_spec(host, {"name": "conv", "params": {"channels": [16, 32]}},
                      {"name": "fashion-mnist", "params": params}, "random-subspace", d=4, seed=0,
                      train={"epochs": 1, "batch_size": 128})
    with tempfile.TemporaryDirectory() as cache:
        data = Worker(Runtime(device="cpu", cache_dir=cache), host).data(spec)
        return (data.x_train.contiguous(), data.y_train, data.x_test.contiguous(), data.y_test)


def _protocol_trial(args, d: int, epochs: int) -> dict:
    """One plain trial of one epoch at ``d``, scaled to ``epochs`` epochs and epochs + 1 evaluations."""
    torch.set_num_threads(1)
    r = plain_loop.run_trial("conv", *args, d=d, epochs=1, channels_last_inputs=True)
    per_eval = r["eval_s"] / r["evaluations"]
    return {"d": d, "ms_step": 1000 * r["train_s"] / r["steps"], "s_eval": per_eval,
            "s_trial": epochs * r["train_s"] + (epochs + 1) * per_eval}


def _paired(args, d: int, epochs: int, workers: int) -> list[dict]:
    """``workers`` forked processes time the same trial at once; the forks share the parent's
    tensors (nothing is pickled to them) and send back only their timings."""
    ctx = mp.get_context("fork")
    out = ctx.SimpleQueue()
    procs = [ctx.Process(target=lambda: out.put(_protocol_trial(args, d, epochs))) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def main() -> None:
    quick = os.environ.get("DOFBENCH_BENCH_QUICK") == "1"
    suite_name = os.environ.get("DOFBENCH_BENCH_SUITE", "paper-conv2-fmnist")
    suite = tomllib.loads((ROOT / "benchmarks.toml").read_text())["suites"][suite_name]
    dims, epochs = suite["dims"], suite.get("train", {}).get("epochs", 1)
    seeds = suite["seeds"] if isinstance(suite["seeds"], int) else len(suite["seeds"])
    measured = [int(x) for x in os.environ.get("DOFBENCH_BENCH_DIMS", "4,64" if quick else "4,1024,4096").split(",")]
    workers = int(os.environ.get("DOFBENCH_BENCH_WORKERS", "2"))
    n = int(os.environ["DOFBENCH_BENCH_N"]) if "DOFBENCH_BENCH_N" in os.environ else (1500 if quick else None)
    args = _data(n)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"plain loop, Conv-2, {len(args[1]):,} train / {len(args[3]):,} test images, one thread; {suite_name}: "
          f"{len(dims)} d × {seeds} seeds × {epochs} epochs; load average {load:.2f} on {os.cpu_count()} cores")
    warm = tuple(t[:2560] for t in args)
    _protocol_trial(warm, measured[0], 1)  # oneDNN's kernels chosen and caches warm before timing
    alone = {}
    for d in measured:
        r = _protocol_trial(args, d, epochs)
        alone[d] = r["s_trial"]
        print(f"  one process,   d = {d:>5}: {r['ms_step']:6.1f} ms a step, {r['s_eval']:5.2f} s an evaluation, "
              f"{r['s_trial']:7.1f} s a protocol trial", flush=True)
    pair = _paired(args, measured[0], epochs, workers)
    slowdown = sum(p["s_trial"] for p in pair) / len(pair) / alone[measured[0]]
    for p in pair:
        print(f"  {workers} at once,     d = {p['d']:>5}: {p['ms_step']:6.1f} ms a step, {p['s_eval']:5.2f} s an "
              f"evaluation, {p['s_trial']:7.1f} s a protocol trial", flush=True)
    ds = sorted(alone)  # linear between the measured d, flat outside them
    total_alone = seeds * float(np.interp(dims, ds, [alone[d] for d in ds]).sum())
    print(f"  {suite_name} on {workers} workers: ≥ {total_alone / workers / 60:.0f} min at the one-process rate, "
          f"≈ {total_alone * slowdown / workers / 60:.0f} min at the rate of {workers} at once "
          f"(each at {slowdown:.2f}× its time alone); load average {os.getloadavg()[0]:.2f} at the end")
