"""Subspace training at scale, measured side by side in one process (`python -m perf subspace`).

1. step time of subspace training ÷ a full-parameter step, per projection and d, on Conv-2
   (28×28×1), ResNet-20 (32×32×3) and the MNIST-1D MLP — random inputs of the right shape, one
   training step each (forward, backward, optimizer), medians over interleaved rounds;
2. memory of the projection: bytes it holds (÷ D floats), and the peak of its forward + backward
   alone (CPU: from the profiler's allocation events; CUDA: max_memory_allocated);
3. per-trial throughput of K seeds trained together ÷ one at a time, through the worker, on the
   MNIST-1D MLP, with the group size the runner picks for each case;
4. the same for the whole machine as a suite runs: every process worker busy at once, one trial
   per task vs groups of 8 (the speed-up batching gives a suite; section 3 is one worker alone).

Nothing here is asserted; numbers depend on the machine. Environment: DOFBENCH_BENCH_THREADS
(torch threads, default 1 — one per worker, as the executors run; section 3 then also runs with
every core in one process), DOFBENCH_BENCH_DEVICE
(auto|cpu|cuda, default auto), DOFBENCH_BENCH_QUICK=1 (fewer cases, for a smoke run),
DOFBENCH_BENCH_ONLY=steps|batched|machine (sections 1–2, 3 or 4 alone).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Callable

import torch

from dofbench.engine.data import DatasetInfo
from dofbench.errors import DofbenchError
from dofbench.engine.flat import FlatNet
from dofbench.run.host import Host
from dofbench.engine.optim import make_optimizer
from dofbench.engine.projections import make_projection

PROJECTIONS = ("dense", "sparse", "fastfood")
DIMS = (10, 100, 1000, 10_000)
CASES = [  # (label, model, params, input shape, batch)
    ("Conv-2", "conv", {"channels": [16, 32]}, (1, 28, 28), 128),
    ("ResNet-20", "resnet20", {}, (3, 32, 32), 128),
    ("MNIST-1D MLP", "mlp", {"hidden": [100, 100]}, (40,), 128),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timer(fn: Callable[[], None], device: torch.device, steps: int) -> float:
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / steps


def _step_fn(net: FlatNet, theta_of: Callable, param: torch.Tensor, opt_name: str, x, y):
    opt = make_optimizer(opt_name, [param], 5e-2 if opt_name == "paper-adam" else 1e-3)
    loss_fn = torch.nn.functional.cross_entropy

    def step() -> None:
        loss = loss_fn(net.forward(theta_of(param), x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    """Peak bytes allocated while ``fn`` runs (beyond what existed before)."""
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = []
    for e in prof.events():
        m = e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        if m:
            events.append((e.time_range.start, m))
    cur = peak = 0
    for _, m in sorted(events):
        cur += m
        peak = max(peak, cur)
    return peak


def bench_steps(host: Host, device: torch.device, quick: bool) -> None:
    print("\n## 1-2. subspace step ÷ full step, and projection memory (in units of D float32)")
    print("| model | D | projection | d | step ratio | held ÷ 4D | fwd+bwd peak ÷ 4D |")
    print("|---|---|---|---|---|---|---|")
    rounds, steps = (2, 2) if quick else (5, 3)  # the machine may be noisy: medians of interleaved rounds
    for label, name, params, shape, batch in CASES[:: 2 if quick else 1]:
        try:
            comp = host.get("model", name)
        except DofbenchError as exc:
            print(f"| {label} | – | – | – | model not available: {exc} | | |")
            continue
        info = DatasetInfo(shape, 10, batch, batch, "random")
        torch.manual_seed(0)
        net = FlatNet(comp.build(comp.parse_params(params), info).to(device))
        net.train()
        theta0 = net.flatten()
        D = net.D
        x = torch.randn(batch, *shape, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        full = _step_fn(net, lambda t: t, theta0.clone().requires_grad_(True), "adam", x, y)
        full()
        for kind in PROJECTIONS:
            for d in DIMS[:: 2 if quick else 1]:
                if d > D:
                    continue
                try:
                    proj = make_projection(kind, D, d, torch.Generator().manual_seed(d), device,
                                           segments=net.numels)
                except DofbenchError as exc:
                    print(f"| {label} | {D} | {kind} | {d} | refused: {str(exc)[:70]}… | | |")
                    continue
                phi = torch.zeros(d, device=device, requires_grad=True)
                sub = _step_fn(net, lambda p, proj=proj: theta0 + proj(p), phi, "paper-adam", x, y)
                sub()
                t_full, t_sub = [], []
                for _ in range(rounds):  # interleaved, so load from elsewhere hits both alike
                    t_full.append(_timer(full, device, steps))
                    t_sub.append(_timer(sub, device, steps))
                ratio = statistics.median(t_sub) / statistics.median(t_full)

                def fwd_bwd(proj=proj, phi=phi) -> None:
                    out = proj(phi)
                    out.backward(torch.ones_like(out))
                peak = peak_bytes(fwd_bwd, device)
                print(f"| {label} | {D} | {kind} | {d} | {ratio:.2f} | {proj.memory_bytes / (4 * D):.2f} "
                      f"| {peak / (4 * D):.2f} |", flush=True)
                del proj, sub, phi


BATCH_CASES = (("dense", 8), ("dense", 64), ("dense", 256), ("fastfood", 256), ("sparse", 256))


def mlp_trial(seed: int, kind: str, d: int, epochs: int):
    """A random-subspace trial of sections 3 and 4: the MNIST-1D MLP [100, 100] as the quick suite
    trains it (batch 128, a full evaluation every epoch), with projection ``kind``."""
    from dofbench.run.resolve import trial_spec

    return trial_spec(Host(use_env=False), {"name": "mlp", "params": {"hidden": [100, 100]}}, "mnist1d",
                      {"name": "random-subspace", "params": {"projection": kind}}, d=d, seed=seed,
                      train={"epochs": epochs, "batch_size": 128})


def bench_batched(device: torch.device, quick: bool) -> None:
    from dofbench.engine.loop import MAX_GROUP
    from dofbench.config.runtime import Runtime
    from dofbench.engine.worker import Worker

    epochs, rounds, ks = (2, 1, (8,)) if quick else (10, 3, (4, 8, 16))
    print(f"\n## 3. per-trial throughput, K seeds trained together ÷ one at a time "
          f"(MNIST-1D MLP [100, 100], D = 15,210; {epochs}-epoch trials as the quick suite runs them: "
          f"batch 128, full evaluation every epoch; medians of {rounds} interleaved round(s))")
    print("| projection | d | K | one at a time s/trial | together s/trial | speed-up | the runner's groups |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        worker = Worker(Runtime(device=str(device), cache_dir=cache), Host(use_env=False))
        method = worker.host.get("method", "random-subspace")

        def spec(seed: int, kind: str, d: int):
            return mlp_trial(seed, kind, d, epochs)
        worker.run(spec(99, "dense", 8))  # generate and load the data once
        looped: dict[tuple, list[float]] = {}
        batched: dict[tuple, list[float]] = {}
        for _ in range(rounds):
            for kind, d in BATCH_CASES:
                specs = [spec(s, kind, d) for s in range(4)]
                t = time.perf_counter()
                for s in specs:
                    worker.run(s)
                looped.setdefault((kind, d), []).append((time.perf_counter() - t) / len(specs))
                for K in ks:
                    specs = [spec(s, kind, d) for s in range(K)]
                    t = time.perf_counter()
                    res = worker.run_group(specs)
                    batched.setdefault((kind, d, K), []).append((time.perf_counter() - t) / K)
                    assert res[0].method_info.get("batched") == K, res[0].error
        for kind, d in BATCH_CASES:
            one = statistics.median(looped[(kind, d)])
            limit = min(MAX_GROUP, method.group_limit(method.parse_params({"projection": kind}), 15_210, d,
                                                      device.type))
            for K in ks:
                together = statistics.median(batched[(kind, d, K)])
                runner = "one at a time" if limit == 1 else f"up to {limit} together"
                print(f"| {kind} | {d} | {K} | {one:.3f} | {together:.3f} | {one / together:.2f}× | {runner} |",
                      flush=True)


MACHINE_CASES = (("dense", 8), ("fastfood", 256))


def bench_machine(device: torch.device, quick: bool) -> None:
    """Section 4: the speed-up a suite sees. Every worker of the default executor (``process``:
    one per core, one torch thread each) busy at once, first with one trial per task, then with
    groups of 8 seeds; 8 seeds per worker; wall time until all are done. Unlike section 3, the
    workers share the memory bus and caches here, and one-at-a-time trials use every core."""
    from dofbench.run.executors import ProcessExecutor, available_cores
    from dofbench.config.runtime import Runtime

    K = 8
    workers = available_cores()
    epochs, rounds = (2, 1) if quick else (10, 3)
    print(f"\n## 4. the whole machine as a suite runs: {workers} process workers × 1 torch thread, "
          f"{K * workers} seeds ({K} per worker), one trial per task vs groups of {K}; wall seconds until "
          f"all are done (MNIST-1D MLP, {epochs}-epoch trials; medians of {rounds} interleaved round(s))")
    print("| projection | d | one at a time s | groups of 8 s | speed-up |")
    print("|---|---|---|---|---|")

    def spec(seed: int, kind: str, d: int) -> dict:  # the executor takes plain dicts
        return mlp_trial(seed, kind, d, epochs).model_dump(mode="json")

    def wall(ex: ProcessExecutor, groups: list[list[dict]]) -> float:
        t = time.perf_counter()
        results = [r for f in [ex.submit(g) for g in groups] for r in f.result()]
        elapsed = time.perf_counter() - t
        bad = [r.error for r in results if r.status != "ok"]
        assert not bad, bad[0]
        return elapsed

    with tempfile.TemporaryDirectory() as cache:
        ex = ProcessExecutor(Runtime(device=str(device), cache_dir=cache), workers=workers)
        try:
            wall(ex, [[spec(99, "dense", 8)] for _ in range(2 * workers)])  # start workers, load data
            times: dict[tuple, list[float]] = {}
            for _ in range(rounds):
                for kind, d in MACHINE_CASES:
                    specs = [spec(s, kind, d) for s in range(K * workers)]
                    times.setdefault((kind, d, 1), []).append(wall(ex, [[s] for s in specs]))
                    times.setdefault((kind, d, K), []).append(
                        wall(ex, [specs[i:i + K] for i in range(0, len(specs), K)]))
        finally:
            ex.close()
    for kind, d in MACHINE_CASES:
        one, together = statistics.median(times[(kind, d, 1)]), statistics.median(times[(kind, d, K)])
        print(f"| {kind} | {d} | {one:.2f} | {together:.2f} | {one / together:.2f}× |", flush=True)


def main() -> None:
    cores = torch.get_num_threads()
    given = os.environ.get("DOFBENCH_BENCH_THREADS")
    threads = int(given or "1")
    torch.set_num_threads(threads)
    want = os.environ.get("DOFBENCH_BENCH_DEVICE", "auto")
    device = torch.device("cuda" if want == "auto" and torch.cuda.is_available() else
                          ("cpu" if want == "auto" else want))
    quick = os.environ.get("DOFBENCH_BENCH_QUICK") == "1"
    print(f"device {device}, torch {torch.__version__}, {threads} thread(s)")
    only = os.environ.get("DOFBENCH_BENCH_ONLY", "")
    if only in ("", "steps"):
        bench_steps(Host(), device, quick)
    if only in ("", "batched"):
        # one thread, as each worker of the process and dask executors runs; and, unless the
        # thread count was given, every core in one process (torch's default: local executor,
        # notebooks), where a lone small trial leaves cores idle that a batched group uses
        for n in [threads] if given or device.type != "cpu" or cores == 1 else [1, cores]:
            torch.set_num_threads(n)
            print(f"\n### {n} torch thread(s)")
            bench_batched(device, quick)
    if only in ("", "machine"):
        bench_machine(device, quick)


if __name__ == "__main__":
    main()
