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
    from dofbench.config.schemas import ResolvedComponent, TrainConfig, TrialSpec

    return TrialSpec(model=ResolvedComponent(name="mlp", params={"hidden": [16]}),
                     dataset=ResolvedComponent(name="mnist1d", params={"num_samples": 600}),
                     method=ResolvedComponent(name=method, params=params), d=d, seed=seed,
                     train=TrainConfig(epochs=2, batch_size=64))
