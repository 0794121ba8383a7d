"""What happens inside a worker (the driver process, a pool process or a Dask worker): load the
data, build the network at θ0, let the method prepare its reparametrisation, train, and return a
:class:`~dofbench.engine.result.TrialResult` per trial. Workers never touch the store: the driver
writes their results."""

from __future__ import annotations

import re
import time
import traceback
from typing import Any

import torch

from dofbench.config.identity import canonical_json, derive_seed
from dofbench.config.runtime import Runtime
from dofbench.config.schemas import TrialSpec
from dofbench.engine.artifacts import ArtifactCache
from dofbench.engine.data import DataBundle
from dofbench.engine.flat import FlatNet
from dofbench.engine.loop import NotBatchable, check_batchable, stack_seeds_forced, train_trials
from dofbench.engine.reparam import MethodContext
from dofbench.engine.result import TrialResult, now
from dofbench.errors import DivergedError, DofbenchError


def resolve_device(name: str) -> torch.device:
    """The torch device of ``--device NAME`` (auto = CUDA when available, else the CPU); a device
    this machine cannot train on is refused in one line that says what is allowed."""
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    allowed = "auto, cpu" + (f", cuda, cuda:0…cuda:{n_cuda - 1}" if n_cuda else "") + (", mps" if mps else "")
    if name == "auto":
        return torch.device("cuda" if n_cuda else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m and not n_cuda:
        raise DofbenchError(f"--device {name}: CUDA is not available on this machine; allowed: {allowed}")
    if m and int(m.group(1) or 0) < n_cuda:
        return torch.device(name)
    if m:
        raise DofbenchError(f"--device {name}: this machine has {n_cuda} CUDA device(s); allowed: {allowed}")
    if name == "mps" and mps:
        return torch.device("mps")
    raise DofbenchError(f"--device {name}: not a device this machine can train on; allowed: {allowed}")


class Worker:
    """Holds the plugin host, artifact cache and loaded datasets of one worker process."""

    def __init__(self, runtime: Runtime, host):
        self.runtime = runtime
        self.host = host  # the plugin host components are looked up in (``get``, ``components``)
        self.cache = ArtifactCache(runtime.cache_dir)
        self.device = resolve_device(runtime.device)
        self._data: dict[str, DataBundle] = {}
        if runtime.threads:
            torch.set_num_threads(runtime.threads)

    def data(self, spec: TrialSpec) -> DataBundle:
        key = canonical_json([spec.dataset.name, spec.dataset.params])
        if key not in self._data:
            comp = self.host.get("dataset", spec.dataset.name)
            params = comp.parse_params(spec.dataset.params)
            bundle = comp.load(params, data_root=self.runtime.data_root, download=self.runtime.download)
            self._data[key] = bundle.to(self.device)
        return self._data[key]

    def build(self, spec: TrialSpec) -> tuple[FlatNet, torch.Tensor, DataBundle]:
        data = self.data(spec)
        model_c = self.host.get("model", spec.model.name)
        params = model_c.parse_params(spec.model.params)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("init", *spec.init_key()))
            module = model_c.build(params, data.info)
        module = module.to(self.device)
        net = FlatNet(module, input_layout=model_c.input_layout(params, self.device.type))
        return net, net.flatten(), data

    def context(self, spec: TrialSpec) -> MethodContext:
        net, theta0, data = self.build(spec)
        method = self.host.get("method", spec.method.name)
        metrics = [c for c, _ in self.host.components("metric") if data.info.task in c.tasks]
        return MethodContext(spec=spec, params=method.parse_params(spec.method.params), net=net,
                             theta0=theta0, data=data, train=spec.train, device=self.device,
                             cache=self.cache, metrics=metrics)

    def run(self, spec: TrialSpec) -> TrialResult:
        """Run one trial; every way it can end is a :class:`TrialResult` (never an exception)."""
        return self.run_group([spec])[0]

    def run_group(self, specs: list[TrialSpec]) -> list[TrialResult]:
        """Run a group of trials, one result each, in the order given. Trials that differ only in
        seed, of a model and a method that both say ``batchable``, are trained in one stack
        (:func:`~dofbench.engine.loop.train_trials`; ``method_info.batched`` is the stack's size).
        A trial whose preparation fails fails alone; trials whose reparametrisations cannot share a
        step (:class:`~dofbench.engine.loop.NotBatchable`) are trained one at a time; an error
        while training a stack fails each of its trials with that error. A trial's ``wall_s`` is
        its own preparation plus its share of its stack's training."""
        started = now()
        stackable = len(specs) > 1 and self._batchable(specs[0])
        results: dict[int, TrialResult] = {}
        spent = [0.0] * len(specs)
        todo: list[tuple[int, MethodContext, Any]] = []  # (position, context, reparametrisation)
        for i, spec in enumerate(specs):
            t0, ctx = time.perf_counter(), None
            try:
                ctx = self.context(spec)
                method = self.host.get("method", spec.method.name)
                outcome = None if stackable else method.train(ctx)
                if outcome is None:
                    todo.append((i, ctx, method.setup(ctx)))
                else:  # the method took over training
                    results[i] = TrialResult.trained(spec, outcome, total_params=ctx.D, device=str(self.device),
                                                     started_at=started, wall_s=time.perf_counter() - t0)
            except Exception as exc:
                results[i] = self._stopped(spec, exc, ctx, started, time.perf_counter() - t0)
            spent[i] = time.perf_counter() - t0
        stacks = [[t] for t in todo]
        if stackable and len(todo) > 1:
            try:
                check_batchable([c for _, c, _ in todo], [r for _, _, r in todo])
                stacks = [todo]
            except NotBatchable:
                pass
        for stack in stacks:
            t0 = time.perf_counter()
            try:
                outcomes = train_trials([c for _, c, _ in stack], [r for _, _, r in stack])
            except Exception as exc:  # a bug or a resource error: every trial of the stack says so
                share = (time.perf_counter() - t0) / len(stack)
                for i, ctx, _ in stack:
                    results[i] = self._stopped(ctx.spec, exc, ctx, started, spent[i] + share)
                continue
            share = (time.perf_counter() - t0) / len(stack)
            for (i, ctx, _), outcome in zip(stack, outcomes):
                results[i] = TrialResult.trained(ctx.spec, outcome, total_params=ctx.D, device=str(self.device),
                                                 started_at=started, wall_s=spent[i] + share, batched=len(stack))
        return [results[i] for i in range(len(specs))]

    def _batchable(self, spec: TrialSpec) -> bool:
        """Whether the model and the method say seeds can be stacked (an unknown component or
        bad params: no; the trial then fails on its own)."""
        try:
            method = self.host.get("method", spec.method.name)
            model = self.host.get("model", spec.model.name)
            return bool(method.batchable(method.parse_params(spec.method.params))
                        and (stack_seeds_forced() or model.batchable(model.parse_params(spec.model.params))))
        except Exception:
            return False

    def _stopped(self, spec: TrialSpec, exc: Exception, ctx: MethodContext | None, started: str,
                 wall: float) -> TrialResult:
        """The result of a trial that raised: 'diverged' for a divergence in its preparation,
        'failed' with the error and its traceback otherwise."""
        total_params = ctx.D if ctx is not None else None
        if isinstance(exc, DivergedError):
            return TrialResult.stopped(spec, "diverged", str(exc), total_params=total_params,
                                       device=str(self.device), started_at=started, wall_s=wall)
        msg = " ".join(str(exc).split()) or exc.__class__.__name__
        return TrialResult.stopped(spec, "failed", f"{exc.__class__.__name__}: {msg}",
                                   traceback=traceback.format_exc(limit=8), total_params=total_params,
                                   device=str(self.device), started_at=started, wall_s=wall)
