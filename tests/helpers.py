"""Test helpers: run the CLI in-process and capture its exit code and output."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from click.testing import CliRunner

from dofbench.cli.main import main


@dataclass
class Result:
    exit_code: int
    output: str
    stderr: str


def invoke(*args: str, env: dict | None = None) -> Result:
    runner = CliRunner()

    def entry():
        main(list(args))

    import click

    @click.command()
    def shim():
        entry()

    res = runner.invoke(shim, [], env=env, catch_exceptions=False)
    return Result(res.exit_code, res.stdout, res.stderr)


def run_cli(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess (exit codes, no traceback)."""
    import os

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "dofbench.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def tiny_spec(method: str, d: int = 32, seed: int = 0, **params):
    """A trial spec of a tiny MLP on a small MNIST-1D (2 epochs), built without a suite."""
    from dofbench.run.host import Host
    from dofbench.run.resolve import trial_spec

    return trial_spec(Host(use_env=False), {"name": "mlp", "params": {"hidden": [16]}},
                      {"name": "mnist1d", "params": {"num_samples": 600}}, {"name": method, "params": params},
                      d=d, seed=seed, train={"epochs": 2, "batch_size": 64})


def synthetic_result(method: str, d: int, seed: int, acc: float | None, *, status: str = "ok",
                     params: dict | None = None, identity: dict | None = None, model_params: dict | None = None,
                     D: int = 1000, tag: str = "", evals: list | None = None, metrics: dict | None = None,
                     model: str = "mlp", dataset: str = "data", train: dict | None = None):
    """A TrialResult as a worker would return it, without training: ``acc`` gives train_acc (and
    best_train_acc, train_loss = 1 − acc) unless ``metrics`` is given; ``tag`` keeps otherwise
    equal trials apart (it enters the dataset's identity, hence the trial id)."""
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
