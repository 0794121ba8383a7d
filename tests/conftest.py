import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """Each test gets no stray plugins and a shared artifact cache for the session
    (MNIST-1D is generated once per worker)."""
    cache = tmp_path_factory.getbasetemp() / "artifact-cache"
    monkeypatch.setenv("DOFBENCH_CACHE", str(cache))
    monkeypatch.delenv("DOFBENCH_PLUGINS", raising=False)
    monkeypatch.delenv("DOFBENCH_DB", raising=False)
    monkeypatch.delenv("DOFBENCH_DATA", raising=False)
    yield


TINY_SUITE = """
[suites.tiny]
description = "tiny MLP on a small MNIST-1D"
models   = [{ name = "mlp", params = { hidden = [16] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 600 } }]
methods  = [{ name = "random-subspace" }]
dims     = [2, 64]
seeds    = 2
train    = { epochs = 2, batch_size = 64 }
[suites.tiny.threshold]
metric   = "best_train_acc"
epsilons = [0.12, 0.99]
delta    = 0.1
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "suites.toml"
    path.write_text(TINY_SUITE)
    return path


@pytest.fixture
def db(tmp_path):
    return tmp_path / "results.duckdb"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """pytest -n 2 already keeps both cores busy: more torch threads per process only contend."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def worker(tmp_path):
    """An in-process worker on the CPU with its own artifact cache."""
    from dofbench.config.runtime import Runtime
    from dofbench.engine.worker import Worker
    from dofbench.run.host import Host

    return Worker(Runtime(device="cpu", cache_dir=str(tmp_path / "cache")), Host(use_env=False))
