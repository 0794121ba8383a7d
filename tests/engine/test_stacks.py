"""Seeds trained together give the one-at-a-time results; the runner groups only trials that
differ in seed and whose model and method are batchable, and dense projections only while they
are small enough for batching to pay."""

import math

import pytest

from dofbench.engine.loop import DENSE_BATCH_BYTES, MAX_GROUP, NotBatchable, dense_group_limit, train_trials
from dofbench.run.host import Host
from dofbench.run.resolve import trial_spec
from dofbench.run.grid import group_trials, task_key
from dofbench.config.schemas import TrialSpec
from dofbench.engine.loop import train_reparam
from dofbench.config.runtime import Runtime
from dofbench.engine.worker import Worker
from dofbench.run.executors import run_group


HOST = Host(use_env=False)


def spec(seed=0, d=24, method="random-subspace", model="mlp", mparams=None, **params) -> TrialSpec:
    return trial_spec(HOST, {"name": model, "params": mparams or {"hidden": [16]}},
                      {"name": "mnist1d", "params": {"num_samples": 600}}, {"name": method, "params": params},
                      d=d, seed=seed, train={"epochs": 2, "batch_size": 64})


@pytest.fixture
def worker(tmp_path):
    return Worker(Runtime(device="cpu", cache_dir=str(tmp_path)), Host(use_env=False))


def _close(a, b):
    assert a.status == b.status and a.steps == b.steps
    assert a.metrics.keys() == b.metrics.keys()
    for k in a.metrics:
        assert a.metrics[k] == pytest.approx(b.metrics[k], abs=1e-5), k
    assert len(a.evals) == len(b.evals)
    for x, y in zip(a.evals, b.evals):
        assert x[:3] == y[:3] and x[3] == pytest.approx(y[3], abs=1e-5)


@pytest.mark.parametrize("method,params", [("random-subspace", {"projection": "dense"}),
                                           ("random-subspace", {"projection": "sparse"}),
                                           ("random-subspace", {"projection": "fastfood", "optimizer": "adam"}),
                                           ("burn-in-subspace", {"steps": 6})])
def test_batched_seeds_equal_one_at_a_time(worker, method, params):
    specs = [spec(s, method=method, **params) for s in range(3)]
    looped = [worker.run(s) for s in specs]
    batched = worker.run_group(specs)
    for a, b in zip(looped, batched):
        assert b.method_info["batched"] == 3 and "batched" not in a.method_info
        assert a.trial_id == b.trial_id
        _close(a, b)
    # the seeds really differ (each has its own θ0, A and data order)
    assert len({r.metrics["train_loss"] for r in batched}) == 3


def test_a_diverging_seed_does_not_disturb_the_others(worker):
    specs = [spec(s) for s in range(3)]
    ctxs = [worker.context(s) for s in specs]
    method = worker.host.get("method", "random-subspace")
    reps = [method.setup(c) for c in ctxs]
    reps[1].origin = reps[1].origin * float("nan")  # this seed's θ is NaN everywhere
    origin = reps[1].origin
    reps[1].theta = lambda phi, p=reps[1].projection: origin + p(phi)
    out = train_trials(ctxs, reps)
    assert [o.status for o in out] == ["ok", "diverged", "ok"]
    single = [train_reparam(c, r) for c, r in zip(ctxs, reps)]
    for a, b in zip(single, out):
        assert (a.status, a.steps, a.error) == (b.status, b.steps, b.error)
        for k, v in a.metrics.items():
            assert (math.isnan(v) and math.isnan(b.metrics[k])) or v == pytest.approx(b.metrics[k], abs=1e-5)


def test_incompatible_trials_are_not_batched(worker):
    ctxs = [worker.context(spec(0, d=8)), worker.context(spec(1, d=16))]
    method = worker.host.get("method", "random-subspace")
    with pytest.raises(NotBatchable):
        train_trials(ctxs, [method.setup(c) for c in ctxs])
    full = worker.host.get("method", "full")
    ctxs = [worker.context(spec(s, method="full")) for s in range(2)]
    with pytest.raises(NotBatchable):
        train_trials(ctxs, [full.setup(c) for c in ctxs])
    # the worker falls back to one at a time
    res = worker.run_group([spec(s, method="full") for s in range(2)])
    assert all(r.status == "ok" and "batched" not in r.method_info for r in res)


def test_group_trials_groups_seeds_where_batching_pays():
    host = Host()
    trials = ([spec(s, d=d) for d in (8, 16) for s in range(MAX_GROUP + 2)]
              + [spec(s, method="full") for s in range(2)]
              + [spec(s, model="conv", mparams={"channels": [4]}) for s in range(2)])
    groups = group_trials(trials, host)
    sizes = [len(g) for g in groups]
    assert sizes == [9, 9, 9, 9, 1, 1, 1, 1]  # 18 seeds: as few groups as allowed, even sizes
    for g in groups:
        assert len({(t.d, t.method.name, t.model.name) for t in g}) == 1
        assert len({t.seed for t in g}) == len(g)
    assert sorted(t.trial_id for g in groups for t in g) == sorted(t.trial_id for t in trials)


@pytest.mark.parametrize("projection,d,device,expected", [
    ("dense", 8, "cpu", [5]),  # 0.5 MB per seed: batching pays
    ("dense", 128, "cpu", [5]),  # 7.8 MB per seed: still within DENSE_BATCH_BYTES
    ("dense", 256, "cpu", [1] * 5),  # 15.6 MB each: memory-bound, one at a time
    ("auto", 256, "cpu", [1] * 5),  # auto resolves to dense here
    ("fastfood", 256, "cpu", [5]),  # O(D) per seed: always pays
    ("sparse", 256, "cpu", [5]),
    ("dense", 256, "cuda", [5]),  # GPU memory bandwidth: batch
])
def test_dense_trials_are_batched_only_while_their_matrix_is_small(projection, d, device, expected):
    host = Host()
    trials = [trial_spec(host, {"name": "mlp", "params": {"hidden": [100, 100]}}, "mnist1d",
                         {"name": "random-subspace", "params": {"projection": projection}}, d=d, seed=s,
                         train={"epochs": 1}) for s in range(5)]
    sizes = {task_key(trials[0].model, trials[0].dataset): 15_210}
    groups = group_trials(trials, host, sizes, device)
    assert [len(g) for g in groups] == expected
    assert dense_group_limit(15_210, d, device) == (MAX_GROUP if device == "cuda" or 4 * 15_210 * d <= DENSE_BATCH_BYTES
                                                   else 1)


def test_executor_entry_point_runs_groups_batched(tmp_path):
    specs = [spec(s) for s in range(2)]
    res = run_group(specs, Runtime(device="cpu", cache_dir=str(tmp_path)).as_dict())
    assert [r.method_info["batched"] for r in res] == [2, 2]
    assert all(r.status == "ok" and r.wall_s > 0 for r in res)


def test_stack_seeds_env_stacks_a_model_that_declines_and_keeps_its_results(worker, monkeypatch):
    """DOFBENCH_STACK_SEEDS=1 (for GPUs, where stacked convolutions may pay): conv seeds are grouped
    and trained in one stack, with the one-at-a-time results."""
    pytest.importorskip("sklearn")
    specs = [trial_spec(HOST, {"name": "conv", "params": {"channels": [4]}}, {"name": "digits", "params": {}},
                        "random-subspace", d=16, seed=s, train={"epochs": 1, "batch_size": 64}) for s in range(2)]
    assert [len(g) for g in group_trials(specs, Host())] == [1, 1]
    looped = [worker.run(s) for s in specs]
    monkeypatch.setenv("DOFBENCH_STACK_SEEDS", "1")
    assert [len(g) for g in group_trials(specs, Host())] == [2]
    batched = worker.run_group(specs)
    for a, b in zip(looped, batched):
        assert b.status == "ok" and b.method_info["batched"] == 2
        _close(a, b)
