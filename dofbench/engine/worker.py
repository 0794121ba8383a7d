"""Run trials: what happens inside a worker (in-process, a pool process or a Dask worker).

Workers never touch the store: they return plain dicts and the driver writes them. A worker
rebuilds the plugin host from the list of plugin modules the driver was given, so third-party
components work in every executor.
"""

from __future__ import annotations

import datetime as _dt
import platform
import time
import traceback
from importlib.metadata import version as _dist_version
from typing import Any

import torch

from dofbench.config.runtime import Runtime
from dofbench.engine.artifacts import ArtifactCache
from dofbench.engine.data import DataBundle
from dofbench.errors import DivergedError, DofbenchError
from dofbench.engine.flat import FlatNet
from dofbench.config.identity import canonical_json, derive_seed
from dofbench.config.schemas import TrialSpec
from dofbench.engine.reparam import MethodContext, TrainOutcome
from dofbench.engine.loop import train_reparam


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DofbenchError(f"--device {name}: CUDA is not available on this machine; use auto or cpu")
    return torch.device(name)


def versions() -> dict[str, str]:
    import numpy

    out = {"dofbench": dofbench_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "python": platform.python_version()}
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
    return out


def dofbench_version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    return _dist_version("dofbench")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("init", *spec.init_key()))
            module = model_c.build(model_c.parse_params(spec.model.params), data.info)
        module = module.to(self.device)
        net = FlatNet(module)
        return net, net.flatten(), data

    def context(self, spec: TrialSpec) -> MethodContext:
        net, theta0, data = self.build(spec)
        method = self.host.get("method", spec.method.name)
        metrics = [c for c, _ in self.host.components("metric") if data.info.task in c.tasks]
        return MethodContext(spec=spec, params=method.parse_params(spec.method.params), net=net,
                             theta0=theta0, data=data, train=spec.train, device=self.device,
                             cache=self.cache, metrics=metrics)

    def run(self, spec: TrialSpec) -> dict[str, Any]:
        started = now()
        t0 = time.perf_counter()
        result: dict[str, Any] = {
            "trial_id": spec.trial_id, "spec": spec.model_dump(mode="json"), "started_at": started,
            "device": str(self.device), "versions": versions(),
        }
        try:
            ctx = self.context(spec)
            result["total_params"] = ctx.D
            method = self.host.get("method", spec.method.name)
            outcome = method.train(ctx)
            if outcome is None:
                outcome = train_reparam(ctx, method.setup(ctx))
            result.update(_outcome_fields(outcome))
        except DivergedError as exc:
            result.update(status="diverged", error=str(exc), metrics={}, evals=[], steps=0)
        except Exception as exc:  # recorded, the run goes on
            msg = " ".join(str(exc).split()) or exc.__class__.__name__
            result.update(status="failed", error=f"{exc.__class__.__name__}: {msg}", metrics={},
                          evals=[], steps=0, traceback=traceback.format_exc(limit=8))
        result["wall_s"] = time.perf_counter() - t0
        result["finished_at"] = now()
        return result

    def run_group(self, specs: list[TrialSpec]) -> list[dict[str, Any]]:
        """Run a group of trials: together with :func:`dofbench.batched.train_batched` when they
        differ only in seed and their method and model are batchable (each trial's ``wall_s`` is
        the group's time divided by its size; ``method_info.batched`` = group size), otherwise —
        or if the batched run fails for any reason — one at a time with :meth:`run`."""
        if len(specs) > 1:
            batched = self._run_batched(specs)
            if batched is not None:
                return batched
        return [self.run(s) for s in specs]

    def _run_batched(self, specs: list[TrialSpec]) -> list[dict[str, Any]] | None:
        from dofbench.engine.batched import train_batched

        started, t0 = now(), time.perf_counter()
        try:
            method = self.host.get("method", specs[0].method.name)
            model = self.host.get("model", specs[0].model.name)
            ctxs = [self.context(s) for s in specs]
            if not (method.batchable(ctxs[0].params)
                    and model.batchable(model.parse_params(specs[0].model.params))):
                return None
            outcomes = train_batched(ctxs, [method.setup(c) for c in ctxs])
        except Exception:  # not batchable after all, or a seed failed in setup: run them singly
            return None
        wall, finished = (time.perf_counter() - t0) / len(specs), now()
        out = []
        for spec, ctx, o in zip(specs, ctxs, outcomes):
            fields = _outcome_fields(o)
            fields["method_info"] = {**o.info, "batched": len(specs)}
            out.append({"trial_id": spec.trial_id, "spec": spec.model_dump(mode="json"),
                        "started_at": started, "device": str(self.device), "versions": versions(),
                        "total_params": ctx.D, **fields, "wall_s": wall, "finished_at": finished})
        return out


def _outcome_fields(o: TrainOutcome) -> dict[str, Any]:
    return {"status": o.status, "error": o.error, "metrics": o.metrics, "evals": o.evals,
            "steps": o.steps, "d_used": o.d, "method_info": o.info}


def failed_result(spec: dict[str, Any], error: str) -> dict[str, Any]:
    """The result of a trial whose worker could not report one (it crashed, was killed, or the
    executor failed): stored as 'failed' with the reason, so ``--retry-failed`` reruns it."""
    t = now()
    return {"trial_id": TrialSpec.model_validate(spec).trial_id, "spec": spec, "status": "failed",
            "error": error, "metrics": {}, "evals": [], "steps": 0, "started_at": t, "finished_at": t,
            "versions": versions()}
