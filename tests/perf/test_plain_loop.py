"""The plain-loop anchor of ``python -m perf anchor`` (perf/plain_loop.py, no dofbench inside) is the
same trial as dofbench's: given dofbench's θ0, projection and batch order, it reproduces the
trial's metrics, for the MLP and for a conv net — so the benchmark's ratio compares like with like."""

from __future__ import annotations

import importlib.util

import pytest
import torch


@pytest.fixture(scope="module")
def plain_loop(repo_root):
    spec = importlib.util.spec_from_file_location("plain_loop", repo_root / "perf" / "plain_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plain_loop_imports_no_dofbench(repo_root):
    import ast

    tree = ast.parse((repo_root / "perf" / "plain_loop.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert names and not [m for m in names if m.startswith("dofbench") or m.startswith("perf")]


@pytest.mark.parametrize("case", ["mlp", "conv"])
def test_the_plain_loop_given_dofbenchs_draws_is_dofbenchs_trial(plain_loop, host, worker, one_thread, case):
    from dofbench.engine.loop import step_plan, trial_batches
    from dofbench.run.resolve import trial_spec

    if case == "mlp":
        model, dataset, kw = {"name": "mlp", "params": {"hidden": [16, 16]}}, {"name": "mnist1d", "params": {
            "num_samples": 600}}, {"hidden": (16, 16)}
    else:
        pytest.importorskip("sklearn")
        model, dataset, kw = {"name": "conv", "params": {"channels": [4, 8]}}, {"name": "digits", "params": {}}, {
            "channels": (4, 8)}
    spec = trial_spec(host, model, dataset, "random-subspace", d=64, seed=3,
                      train={"epochs": 3, "batch_size": 64})
    ctx = worker.context(spec)
    rep = host.get("method", "random-subspace").setup(ctx)
    total, _ = step_plan(spec.train, len(ctx.data.y_train))
    data = ctx.data
    plain = plain_loop.run_trial(case, data.x_train, data.y_train, data.x_test, data.y_test, d=64, epochs=3,
                                 batch_size=64, theta0=rep.origin, at=rep.projection.tensors["AT"],
                                 orders=trial_batches(ctx, total), eval_rows=100, **kw)
    result = worker.run(spec)
    assert result.status == "ok" and plain["steps"] == result.steps == total
    keys = [f"{b}{s}_{m}" for b in ("", "best_") for s in ("train", "test") for m in ("loss", "acc")]
    for k in keys:
        assert plain[k] == pytest.approx(result.metrics[k], abs=1e-4), k
    assert result.metrics["best_train_acc"] > 0.15  # it learned something: the comparison is not of two untrained nets
    assert torch.equal(rep.origin, ctx.theta0)
