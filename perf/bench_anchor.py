"""dofbench's trial ÷ the trial a researcher writes by hand (`python -m perf anchor`).

The plain loop is ``perf/plain_loop.py`` (plain PyTorch, no dofbench): the same network, θ = θ0 +
Aφ with the same dense projection, the paper's Adam and the same evaluations on the full train and
test sets. Both run the same spec on the same tensors in one process, interleaved round by round
(the order rotating, so that every trial holds every position in a round equally often: a fixed
middle place cost the MLP trial about 5 % here), and the medians are compared, for

- Conv-2 (channels [16, 32]) on Fashion-MNIST (a stratified subset of the 60k/10k, for the timing);
- the MNIST-1D MLP [100, 100] as the ``quick`` suite trains it (20 epochs).

The plain loop runs twice: with the images as they arrive (N, C, H, W contiguous) and with the same
values in channels-last strides; both evaluate in 500-row chunks. dofbench runs with its defaults
and, where it has them, with the settings it had before issue 17 ("before": contiguous inputs,
4096-row evaluation chunks). Every trial's achieved GFLOP/s (FLOPs counted by
``torch.utils.flop_counter`` on one step and one evaluation chunk) is printed against this
machine's float32 matrix-product rate (1024³ ``torch.mm``, the best of several) at the same
thread count.

Nothing is asserted; numbers depend on the machine and its load. Environment:
DOFBENCH_BENCH_THREADS (torch threads, default 1: one per worker, as the executors run),
DOFBENCH_BENCH_ROUNDS (default 5), DOFBENCH_BENCH_QUICK=1 (a smoke run: small subsets, 2 rounds),
DOFBENCH_BENCH_N (Fashion-MNIST training examples, default 6000; the test set keeps a third as
many), DOFBENCH_BENCH_ONLY=conv|mlp (one case), DOFBENCH_BENCH_DEVICE (default cpu; e.g. cuda:
both trials on that device, the mm rate measured there, each timing synchronised).

Wall-clock ratios are what the targets are about; on a loaded machine (load average above the
core count) they are noisy, so on the CPU the ratio of CPU time (``time.process_time``) is printed
too, which time spent waiting for a core does not inflate.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from dofbench.config.runtime import Runtime
from dofbench.engine.worker import Worker
from dofbench.run.host import Host
from dofbench.run.resolve import trial_spec
from perf import plain_loop


@dataclass
class Case:
    key: str
    label: str
    plain_model: str  # plain_loop's name of the network
    model: dict[str, Any]
    dataset: dict[str, Any]
    d: int
    epochs: int
    # dofbench variants: label → (model params, train config) added to the case's
    variants: dict[str, tuple[dict, dict]] = field(default_factory=dict)


def cases(n: int, quick: bool) -> list[Case]:
    conv_before = ({"layout": "contiguous"}, {"eval_batch_size": 4096})
    return [
        Case("conv", f"Conv-2 / Fashion-MNIST ({n:,} train, {n // 3:,} test)", "conv",
             {"name": "conv", "params": {"channels": [16, 32]}},
             {"name": "fashion-mnist", "params": {"subsample": n, "test_subsample": n // 3}},
             d=256, epochs=1 if quick else 3, variants={"dofbench": ({}, {}), "dofbench, before": conv_before}),
        Case("mlp", "MNIST-1D MLP [100, 100] (4,000 train, 1,000 test)", "mlp",
             {"name": "mlp", "params": {"hidden": [100, 100]}}, {"name": "mnist1d", "params": {}},
             d=256, epochs=4 if quick else 20,
             variants={"dofbench": ({}, {}), "dofbench, before": ({}, {"eval_batch_size": 4096})}),
    ]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(threads: int, device: str = "cpu") -> float:
    """GFLOP/s of a 1024³ float32 product on this machine (``device``), the best of 10."""
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * 1024**3 / best / 1e9


def trial_flops(case: Case, data, batch: int) -> float:
    """FLOPs of one whole trial: every step's forward and backward (with A φ and Aᵀ g) and every
    evaluation's forwards, counted on one step of ``batch`` rows and one evaluation chunk."""
    shapes = (plain_loop.conv_shapes(data.x_train.shape[1], tuple(data.x_train.shape[2:]), (16, 32), 10)
              if case.plain_model == "conv" else plain_loop.mlp_shapes(40, (100, 100), 10))
    forward = plain_loop.conv_forward if case.plain_model == "conv" else plain_loop.mlp_forward
    theta0 = plain_loop.lecun_init(shapes, torch.Generator().manual_seed(0))
    at = torch.randn(case.d, theta0.numel())
    phi = torch.zeros(case.d, requires_grad=True)
    x, y = data.x_train[:batch].cpu(), data.y_train[:batch].cpu()
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(forward(plain_loop.unflatten(theta0 + phi @ at, shapes), x), y).backward()
    step = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        forward(plain_loop.unflatten(theta0 + phi @ at, shapes), x)
    fwd = fc.get_total_flops()
    proj = 2 * case.d * theta0.numel()
    n, m = len(data.y_train), len(data.y_test)
    steps = -(-n // batch) * case.epochs
    evaluations = case.epochs + 1
    rows_trained = n * case.epochs
    per_row_step = (step - 2 * proj) / batch
    per_row_eval = (fwd - proj) / batch
    return steps * 2 * proj + rows_trained * per_row_step + evaluations * (2 * proj + (n + m) * per_row_eval)


def main() -> None:
    threads = int(os.environ.get("DOFBENCH_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    quick = os.environ.get("DOFBENCH_BENCH_QUICK") == "1"
    rounds = int(os.environ.get("DOFBENCH_BENCH_ROUNDS", "2" if quick else "5"))
    n = int(os.environ.get("DOFBENCH_BENCH_N", "1500" if quick else "6000"))
    only = os.environ.get("DOFBENCH_BENCH_ONLY", "")
    device = os.environ.get("DOFBENCH_BENCH_DEVICE", "cpu")
    cpu = device == "cpu"
    rate = matmul_rate(threads, device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = "" if cpu else f" on {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else device})"
    print(f"torch {torch.__version__}, {threads} thread(s){where}, load average {load:.2f} on {os.cpu_count()} "
          f"core(s) at the start; this machine's 1024³ float32 mm: {rate:.1f} GFLOP/s; medians of {rounds} "
          f"interleaved round(s)")
    print("\n| case | trial | median s | ÷ plain | ÷ plain, channels-last | ÷ plain, CPU time | GFLOP/s | of the mm rate |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        worker = Worker(Runtime(device=device, cache_dir=cache, threads=threads), Host(use_env=False))
        for case in cases(n, quick):
            if only and case.key != only:
                continue
            specs = {}
            for label, (mparams, train) in case.variants.items():
                model = {"name": case.model["name"], "params": {**case.model["params"], **mparams}}
                try:
                    specs[label] = trial_spec(worker.host, model, case.dataset, "random-subspace", d=case.d,
                                              seed=0, train={"epochs": case.epochs, "batch_size": 128, **train})
                except Exception as exc:  # a setting this version does not have
                    print(f"| {case.label} | {label} | not available: {' '.join(str(exc).split())[:60]} | | | | | |")
            data = worker.data(next(iter(specs.values())))
            args = (data.x_train, data.y_train, data.x_test, data.y_test)
            plain = {
                "plain": lambda: plain_loop.run_trial(case.plain_model, *args, d=case.d, epochs=case.epochs),
                "plain, channels-last": lambda: plain_loop.run_trial(case.plain_model, *args, d=case.d,
                                                                     epochs=case.epochs, channels_last_inputs=True),
            }
            if data.x_train.dim() != 4:
                del plain["plain, channels-last"]

            def dofbench_run(spec):
                def run():
                    res = worker.run(spec)
                    assert res.status == "ok", res.error
                return run
            runs = {**plain, **{label: dofbench_run(s) for label, s in specs.items()}}
            for fn in runs.values():  # warm up: first-call costs (allocations, kernels) out of the timing
                fn()
            times: dict[str, list[float]] = {k: [] for k in runs}
            cpu_times: dict[str, list[float]] = {k: [] for k in runs}
            names = list(runs)
            for r in range(rounds):  # every trial in every position equally often (rotated, then reversed)
                order = names[r % len(names):] + names[:r % len(names)]
                if (r // len(names)) % 2:
                    order.reverse()
                for k in order:
                    sync(device)
                    t, c = time.perf_counter(), time.process_time()
                    runs[k]()
                    sync(device)
                    times[k].append(time.perf_counter() - t)
                    cpu_times[k].append(time.process_time() - c)
            flops = trial_flops(case, data, 128)
            med = {k: statistics.median(v) for k, v in times.items()}
            for k in runs:
                cl = (f"{statistics.median([a / b for a, b in zip(times[k], times['plain, channels-last'])]):.3f}"
                      if "plain, channels-last" in times else "–")
                ratio = statistics.median([a / b for a, b in zip(times[k], times["plain"])])
                cpu_ratio = (f"{statistics.median([a / b for a, b in zip(cpu_times[k], cpu_times['plain'])]):.3f}"
                             if cpu else "–")
                gflops = flops / med[k] / 1e9
                print(f"| {case.label} | {k} | {med[k]:.2f} | {ratio:.3f} | {cl} | {cpu_ratio} | {gflops:.1f} | "
                      f"{gflops / rate:.0%} |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n(ratios: medians of the per-round ratios; load average {load:.2f} at the end)")


if __name__ == "__main__":
    main()
