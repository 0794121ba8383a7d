"""Fixtures every test may use. Shared helpers are fixtures (factories where they take arguments);
shared texts are files under ``tests/data``. Tests are collected with ``--import-mode=importlib``:
no test module imports another, none changes ``sys.path``.

Marks: ``slow`` (the few tests of whole runs in subprocesses, pools and clusters; ``make test``
leaves them out, ``make test-slow`` and CI run them).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """Each test gets no stray plugins and a shared artifact cache for the session
    (MNIST-1D is generated once per worker)."""
    cache = tmp_path_factory.getbasetemp() / "artifact-cache"
    monkeypatch.setenv("DOFBENCH_CACHE", str(cache))
    for var in ("DOFBENCH_PLUGINS", "DOFBENCH_DB", "DOFBENCH_DATA", "DOFBENCH_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """pytest -n 2 already keeps both cores busy: more torch threads per process only contend."""
    import torch

    torch.set_num_threads(1)
    yield


# ------------------------------------------------------------------------------ paths and texts
@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_suite() -> str:
    """A suite file of one tiny suite ('tiny': an MLP [16] on 600 MNIST-1D examples, d ∈ {2, 64},
    2 seeds, 2 epochs): 4 trials of a fraction of a second."""
    return (DATA / "tiny.toml").read_text()


@pytest.fixture
def tiny_config(tmp_path, tiny_suite) -> Path:
    path = tmp_path / "suites.toml"
    path.write_text(tiny_suite)
    return path


@pytest.fixture(scope="session")
def registry_text() -> str:
    """A registry file of four published results (two rules, a model-params filter, a variant)."""
    return (DATA / "registry.toml").read_text()


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "results.duckdb"


# ------------------------------------------------------------------------------ running things
@dataclass
class CliResult:
    exit_code: int
    output: str
    stderr: str


def _invoke(*args: str, env: dict | None = None) -> CliResult:
    """The CLI's ``main`` in this process (its error handling included), output captured."""
    import click
    from click.testing import CliRunner

    from dofbench.cli.main import main

    @click.command()
    def shim():
        main(list(args))

    res = CliRunner().invoke(shim, [], env=env, catch_exceptions=False)
    return CliResult(res.exit_code, res.stdout, res.stderr)


@pytest.fixture(scope="session")
def invoke() -> Callable[..., CliResult]:
    """``invoke(*args, env=None)``: run ``dofbench ARGS`` in-process; exit code, stdout, stderr."""
    return _invoke


def _run_cli(*args: str, env: dict | None = None, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dofbench.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(*args, env=None, cwd=None)``: the real console entry point in a subprocess."""
    return _run_cli


@pytest.fixture(scope="session")
def host():
    """The plugin host of the built-in plugins (no DOFBENCH_PLUGINS)."""
    from dofbench.run.host import Host

    return Host(use_env=False)


@pytest.fixture(scope="session")
def tiny_spec(host) -> Callable[..., Any]:
    """``tiny_spec(method, d=32, seed=0, model_params=None, train=None, **method_params)``: a trial
    spec of an MLP [16] on 600 MNIST-1D examples (2 epochs, batch 64), resolved as a suite would."""
    from dofbench.run.resolve import trial_spec

    def make(method: str, d: int = 32, seed: int = 0, model_params: dict | None = None, model: str = "mlp",
             train: dict | None = None, dataset: dict | None = None, **params):
        return trial_spec(host, {"name": model, "params": {"hidden": [16]} if model_params is None else model_params},
                          dataset or {"name": "mnist1d", "params": {"num_samples": 600}},
                          {"name": method, "params": params}, d=d, seed=seed,
                          train=train or {"epochs": 2, "batch_size": 64})

    return make


@pytest.fixture
def worker(tmp_path, host):
    """An in-process worker on the CPU with its own artifact cache."""
    from dofbench.config.runtime import Runtime
    from dofbench.engine.worker import Worker

    return Worker(Runtime(device="cpu", cache_dir=str(tmp_path / "cache")), host)


@pytest.fixture
def one_thread():
    """In-process runs use one torch thread, like pool workers (same numbers, no oversubscription)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------ synthetic stores
def _synthetic_result(method: str, d: int, seed: int, acc: float | None, *, status: str = "ok",
                      params: dict | None = None, identity: dict | None = None, model_params: dict | None = None,
                      D: int = 1000, tag: str = "", evals: list | None = None, metrics: dict | None = None,
                      model: str = "mlp", dataset: str = "data", train: dict | None = None):
    from dofbench.config.schemas import ResolvedComponent, TrainConfig, TrialSpec
    from dofbench.engine.result import TrialResult

    spec = TrialSpec(model=ResolvedComponent(name=model, params=model_params or {}),
                     dataset=ResolvedComponent(name=dataset, params={}),
                     method=ResolvedComponent(name=method, params=params or {}), d=d, seed=seed,
                     train=TrainConfig(**(train or {})),
                     identity={"model": model_params or {}, "dataset": {"tag": tag} if tag else {},
                               "method": identity or {}})
    if metrics is None:
        metrics = {} if acc is None else {"train_acc": acc, "best_train_acc": acc, "train_loss": 1 - acc}
    return TrialResult(spec, status, metrics=metrics, evals=evals if evals is not None else [(0, "train", "acc", 0.1)],
                       total_params=D, d_used=d, steps=10, wall_s=0.1, device="cpu",
                       versions={"dofbench": "test", "torch": "x"})


@pytest.fixture(scope="session")
def synthetic_result() -> Callable[..., Any]:
    """``synthetic_result(method, d, seed, acc, *, status, params, identity, model_params, D, tag,
    evals, metrics, model, dataset, train)``: a TrialResult as a worker would return it, without
    training. ``acc`` gives train_acc (and best_train_acc, train_loss = 1 − acc) unless ``metrics``
    is given; ``tag`` keeps otherwise equal trials apart (it enters the dataset's identity)."""
    return _synthetic_result


@dataclass
class SynthSuite:
    """A small synthetic suite 'synth' (no training): random subspaces (and burn-in subspaces at
    t = 0 and 16) of an MLP on MNIST-1D with D = 5000 over d ∈ {4, 16, 64, 256} × 3 seeds, with a
    phase transition in log d, the full-training baseline, one diverged and one failed trial."""

    SUITE: str = "synth"
    D: int = 5000
    DIMS: list[int] = field(default_factory=lambda: [4, 16, 64, 256])
    SEEDS: list[int] = field(default_factory=lambda: [0, 1, 2])
    EPSILONS: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])
    BURNIN_STEPS: list[int] = field(default_factory=lambda: [0, 16])

    @staticmethod
    def acc(method: str, d: int, seed: int, steps: int = 0) -> float:
        """Accuracy rising from 0.1 to 0.95 around d ≈ 60 / (1 + steps/8)."""
        centre = math.log(60 / (1 + steps / 8))
        jitter = ((seed * 7919 + d * 31) % 11 - 5) / 60
        return 0.1 + 0.85 / (1 + math.exp(-(math.log(d) - centre) * 1.6 + jitter))

    def result(self, method: str, params: dict, d: int, seed: int, acc: float | None, status: str = "ok",
               model_params: dict | None = None, tag: str = ""):
        """A trial of the suite's shape: three evaluations (steps 0, 10, 20) of train/test acc and loss."""
        evals = []
        if acc is not None:
            curve = [0.1, 0.1 + (acc - 0.1) * 0.6, acc]
            for step, v in zip((0, 10, 20), curve):
                evals += [(step, "train", "acc", v), (step, "test", "acc", v - 0.05),
                          (step, "train", "loss", 2.3 * (1 - v))]
        metrics = {} if acc is None else {"train_acc": acc, "best_train_acc": acc, "test_acc": acc - 0.05,
                                          "best_test_acc": acc - 0.05, "train_loss": 2.3 * (1 - acc)}
        return _synthetic_result(method, d, seed, acc, status=status, params=params,
                                 identity={k: v for k, v in params.items() if k == "steps"},
                                 model_params=model_params or {"hidden": [32]}, D=self.D, tag=tag, evals=evals,
                                 metrics=metrics, dataset="mnist1d", train={"epochs": 3})

    def make_store(self, path, burnin: bool = True):
        """The suite written through Store.write_results and registered as a run would."""
        from dofbench.results import intervals
        from dofbench.results.store import Store

        store = Store(path)
        results, ids, baselines, yardsticks = [], [], set(), set()

        def add(*args, **kw):  # the roles the built-in methods declare, as a suite resolves them
            r = self.result(*args, **kw)
            results.append(r)
            ids.append(r.trial_id)
            if r.spec.method.name == "full":
                baselines.add(r.trial_id)
            if r.spec.method.name == "random-subspace":
                yardsticks.add(r.trial_id)

        for d in self.DIMS:
            for s in self.SEEDS:
                add("random-subspace", {"projection": "dense"}, d, s, self.acc("random-subspace", d, s))
                for t in self.BURNIN_STEPS if burnin else []:
                    add("burn-in-subspace", {"projection": "dense", "steps": t}, d, s,
                        self.acc("burn-in-subspace", d, s, t))
        for s in self.SEEDS:
            add("full", {}, self.D, s, 0.97)
        add("random-subspace", {"projection": "dense"}, self.DIMS[-1], 9, None, status="diverged")
        add("random-subspace", {"projection": "dense"}, self.DIMS[-1], 10, None, status="failed")
        store.write_results(results, self.SUITE)
        store.register_suite(self.SUITE, "synthetic suite for plot tests", {"dims": self.DIMS}, "test", ids,
                             "best_train_acc", self.EPSILONS, 0.25, True, baselines=baselines,
                             yardsticks=yardsticks)
        store.record_statistics(self.SUITE, "grid", 0.95, seeds=len(self.SEEDS))
        intervals.refresh(store, self.SUITE)  # what a run computes at its end
        return store


@pytest.fixture(scope="session")
def synth() -> SynthSuite:
    return SynthSuite()


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory, synth):
    """The synthetic suite's store, written once per test process: read it, never change it (copy
    the file to change it)."""
    return synth.make_store(tmp_path_factory.mktemp("synth") / "synth.duckdb")
