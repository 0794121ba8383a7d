"""Executors: local, process pool and Dask LocalCluster store the same results; `auto`; budgets;
one-line errors for bad run options."""

from __future__ import annotations


import pytest
import torch

from dofbench.run import executors as ex
from dofbench.cli.session import Session
from dofbench.errors import DofbenchError
from dofbench.run.scheduler import Budget, SuiteSummary
from dofbench.results.store import Store


def snapshot(db) -> tuple[dict, list]:
    s = Store(db)
    trials = {r[0]: r[1:] for r in s.query(
        "select trial_id, status, error, metrics, steps, d_used, total_params, best_train_acc from trials")[1]}
    return trials, s.query("select * from evals order by all")[1]


@pytest.fixture
def one_thread():
    """Local runs with one torch thread, like pool and Dask workers (bitwise-equal numbers)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_dask_localcluster_stores_the_same_results_as_local(tiny_config, tmp_path, one_thread):
    """(The process pool's results are compared with local's in test_resilience.)"""
    pytest.importorskip("distributed")
    local = Session(tmp_path / "local.duckdb", config=tiny_config, use_env=False)
    local.runtime.threads = 1
    [s_local] = local.run(["tiny"], executor="local")
    assert s_local.ok == 4
    want = snapshot(tmp_path / "local.duckdb")
    assert all(row[0] == "ok" for row in want[0].values()) and want[1]

    db = tmp_path / "dask.duckdb"
    [summary] = Session(db, config=tiny_config, use_env=False).run(["tiny"], executor="dask", workers=2)
    assert (summary.ok, summary.failed, summary.interrupted) == (4, 0, False), summary.errors
    assert snapshot(db) == want


def test_auto_picks_local_for_runtime_plugins_and_process_refuses_them(tiny_config, db, monkeypatch):
    s = Session(db, config=tiny_config, use_env=False)
    monkeypatch.setattr(ex, "available_cores", lambda: 2)
    assert ex.choose_auto(s.host) == "process"
    assert ex.choose_auto(s.host, workers=1) == "local"
    assert ex.choose_auto(s.host, options={"scheduler": "tcp://x:8786"}) == "dask"
    monkeypatch.setattr(ex, "available_cores", lambda: 1)
    assert ex.choose_auto(s.host) == "local"
    monkeypatch.setattr(ex, "available_cores", lambda: 4)

    class Extra:  # any object with hooks, registered at run time: a worker could not import it
        pass

    s.host.register(Extra(), name="notebook-plugin")
    assert ex.choose_auto(s.host) == "local"
    with pytest.raises(DofbenchError, match="notebook-plugin.*cannot be re-imported"):
        s.run(["tiny"], executor="process")
    names = {r["name"] for r in s.list("executors").records()}
    assert {"auto", "local", "process", "dask"} <= names


def test_budgets_stop_starting_trials_and_a_rerun_finishes(tiny_config, db, one_thread):
    s = Session(db, config=tiny_config, use_env=False)
    [first] = s.run(["tiny"], executor="local", max_trials=3)  # whole groups of the 2 seeds: 2 start
    assert first.ran == 2 and first.not_run == 2 and first.budget == "trial budget 3"
    assert "trial budget 3 reached, 2 trials left" in first.line()
    [timed] = s.run(["tiny"], executor="local", time_budget=1e-9)
    assert timed.ran == 0 and timed.not_run == 2 and timed.budget.startswith("time budget")
    [rest] = s.run(["tiny"], executor="local")
    assert (rest.skipped, rest.ran, rest.budget) == (2, 2, None)
    assert s.query("select count(*) as n from trials").records()[0]["n"] == 4
    with pytest.raises(DofbenchError, match="--max-trials"):
        Budget.of(max_trials=0)


@pytest.mark.parametrize("args, message", [
    (["--time-budget", "soon"], "--time-budget 'soon': expected a positive duration"),
    (["--time-budget", "0s"], "--time-budget '0s'"),
    (["--max-trials", "0"], "--max-trials: input should be greater than or equal to 1"),
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:8786"], "--scheduler applies to --executor dask"),
    (["--executor", "threads"], "--executor: unknown executor 'threads'; available: auto, dask, local, process"),
])
def test_bad_run_options_end_with_one_line(tiny_config, db, args, message, invoke):
    res = invoke("run", "tiny", "--config", str(tiny_config), "--db", str(db), *args)
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [f"Error: {res.stderr.strip()[7:]}"]
    assert message in res.stderr


def test_interrupted_summary_line():
    s = SuiteSummary("q", total=10, skipped=2, ok=3, interrupted=True, signal="SIGTERM", lost=2, not_run=3)
    assert s.line().endswith("interrupted (SIGTERM): 2 in flight dropped, 3 not started; rerun the same command to finish")


def test_pool_workers_are_spread_over_the_visible_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    pool = ex.ProcessExecutor(ex.Runtime(device="auto"), workers=3)  # nothing starts before a submit
    assert [r["device"] for r in pool._runtimes] == ["cuda:0", "cuda:1", "cuda:0"]
    assert all(r["threads"] == 1 for r in pool._runtimes)
    pinned = ex.ProcessExecutor(ex.Runtime(device="cuda:1"), workers=2)
    assert [r["device"] for r in pinned._runtimes] == ["cuda:1", "cuda:1"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert [r["device"] for r in ex.ProcessExecutor(ex.Runtime(), workers=2)._runtimes] == ["auto", "auto"]
    for p in (pool, pinned):
        p.close()


def test_a_local_cluster_restarting_a_worker_is_not_a_cluster_without_workers():
    from types import SimpleNamespace

    from dofbench.run.executors import restarting_workers

    def nanny(status):
        return SimpleNamespace(status=SimpleNamespace(name=status))

    assert restarting_workers(SimpleNamespace(workers={0: nanny("running")}))  # its worker process restarts
    assert restarting_workers(SimpleNamespace(workers={0: nanny("closed"), 1: nanny("running")}))
    assert not restarting_workers(SimpleNamespace(workers={0: nanny("closed"), 1: nanny("failed")}))
    assert not restarting_workers(SimpleNamespace(workers={}))
