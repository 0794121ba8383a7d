"""Interrupted runs and crashed workers, through the real CLI in subprocesses: kill -9 of the
driver at several points, Ctrl-C, a worker killed mid-trial and one that segfaults, and
`dofbench query` while a run is writing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from dofbench.cli.session import Session
from dofbench.plugin.components import Method
from dofbench.errors import DofbenchError
from dofbench.plugin.hookspecs import hookimpl
from dofbench.results.store import Store
from dofbench.engine.reparam import Reparam

SUITE = """
[suites.r]
models   = [{ name = "mlp", params = { hidden = [16] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 600 } }]
methods  = [{ name = "random-subspace" }]
dims     = [2, 8, 32, 64]
seeds    = 2
train    = { epochs = 2, batch_size = 64 }
[suites.r.threshold]
metric   = "best_train_acc"
epsilons = [0.12]
"""

FAULTS_PLUGIN = '''
import os, signal, time
from pathlib import Path

import torch

from dofbench.plugin import Method, Reparam, hookimpl


class Faulty(Method):
    name = "faulty"
    description = ("random coordinates; a trial blocks while STATE/block-D-SEED exists, segfaults "
                   "once if STATE/segv-D-SEED exists, every time if STATE/segv-always-D-SEED does, and "
                   "kills its process if STATE/die-D-SEED does")

    def setup(self, ctx):
        STATE = Path(os.environ["FAULTS_STATE"])
        key = f"{ctx.d}-{ctx.spec.seed}"
        if (STATE / f"block-{key}").exists():
            (STATE / f"at-{key}.tmp").write_text(str(os.getpid()))
            (STATE / f"at-{key}.tmp").rename(STATE / f"at-{key}")
            while (STATE / f"block-{key}").exists():
                time.sleep(0.05)
        if (STATE / f"segv-{key}").exists():
            (STATE / f"segv-{key}").unlink()
            os.kill(os.getpid(), signal.SIGSEGV)
        if (STATE / f"segv-always-{key}").exists():
            os.kill(os.getpid(), signal.SIGSEGV)
        if (STATE / f"die-{key}").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        idx = torch.randperm(ctx.D, generator=ctx.generator("coordinates", ctx.d))[: ctx.d].to(ctx.device)
        theta0 = ctx.theta0
        return Reparam(phi0=theta0.new_zeros(ctx.d), theta=lambda phi: theta0.index_add(0, idx, phi))


@hookimpl
def dofbench_methods():
    return [Faulty()]
'''


@pytest.fixture
def faults(tmp_path, monkeypatch):
    """The faulty plugin, its state folder and a suite of 8 trials that uses it."""
    plugin = tmp_path / "faults.py"
    plugin.write_text(FAULTS_PLUGIN)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FAULTS_STATE", str(state))
    config = tmp_path / "s.toml"
    config.write_text(SUITE.replace('{ name = "random-subspace" }', '"faulty"'))
    return plugin, state, config


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)  # one torch thread: same numbers as the pool
    env.pop("DOFBENCH_DEBUG", None)
    return env


def start_run(tmp: Path, db: Path, *args: str, env: dict | None = None, tag: str = "run") -> subprocess.Popen:
    out = open(tmp / f"{tag}.out", "w")
    err = open(tmp / f"{tag}.err", "w")
    return subprocess.Popen([sys.executable, "-m", "dofbench.cli", *args, "--db", str(db), "--no-progress"],
                            stdout=out, stderr=err, env=env or cli_env(), cwd=tmp)


def stored(db: Path) -> int:
    """Trials stored so far, read while the run writes (a read-only open that retries)."""
    if not db.exists():
        return 0
    try:
        return Store(db).query("select count(*) from trials")[1][0][0]
    except DofbenchError as exc:
        if "does not exist" in str(exc):  # created, not yet migrated
            return 0
        raise


def wait_until(cond, proc: subprocess.Popen | None = None, timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def gone(pids: list[int]) -> bool:
    def alive(p: int) -> bool:
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    return not any(alive(p) for p in pids)


def snapshot(db: Path) -> tuple[dict, dict]:
    s = Store(db)
    trials = {r[0]: r[1:] for r in s.query(
        "select trial_id, status, error, metrics, steps, d_used, total_params, method_info from trials")[1]}
    evals: dict = {}
    for tid, step, split, metric, value in s.query(
            "select trial_id, step, split, metric, value from evals order by all")[1]:
        evals.setdefault(tid, []).append((step, split, metric, value))
    return trials, evals


@pytest.fixture
def one_thread():
    """In-process runs use one torch thread, like pool workers (same numbers, no oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_driver_resumes_to_the_uninterrupted_results(tmp_path, faults, one_thread, invoke):
    plugin, state, config = faults
    ref_db = tmp_path / "ref.duckdb"
    ref = Session(ref_db, plugins=[str(plugin)], config=config, use_env=False)
    ref.runtime.threads = 1
    [summary] = ref.run(["r"], executor="local")
    assert summary.ok == 8
    want_trials, want_evals = snapshot(ref_db)

    db = tmp_path / "killed.duckdb"
    run = ("--plugin", str(plugin), "run", "r", "--config", str(config))

    # 1. kill -9 of a process pool's driver while a worker is mid-trial: the workers die with it.
    #    Two trials block, so the run cannot finish before the kill whatever the timing.
    (state / "block-32-0").touch()
    (state / "block-64-1").touch()
    p = start_run(tmp_path, db, *run, "--executor", "process", "--workers", "2", tag="p1")
    wait_until(lambda: (state / "at-32-0").exists() and stored(db) >= 1, p, what="a stored and a blocked trial")
    workers = children(p.pid)
    assert int((state / "at-32-0").read_text()) in workers
    p.send_signal(signal.SIGKILL)
    p.wait()
    wait_until(lambda: gone(workers), timeout=30, what="the orphaned workers to exit")
    for f in ("block-32-0", "at-32-0", "at-64-1"):
        (state / f).unlink(missing_ok=True)
    first = stored(db)
    assert 1 <= first <= 6

    # 2. kill -9 of a local driver mid-trial, on the last trial (64, 1)
    p = start_run(tmp_path, db, *run, "--executor", "local", tag="p2")
    wait_until(lambda: (state / "at-64-1").exists(), p, what="the blocked trial")
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert first < stored(db) == 7

    # 3. Ctrl-C mid-trial: a clean stop with a summary, exit code 130, nothing half-written
    (state / "at-64-1").unlink()
    p = start_run(tmp_path, db, *run, "--executor", "local", tag="p3")
    wait_until(lambda: (state / "at-64-1").exists(), p, what="the blocked trial")
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=60)
    err = (tmp_path / "p3.err").read_text()
    assert rc == 130, err
    assert "interrupted (SIGINT): 1 in flight dropped" in err and "rerun the same command" in err, err
    assert "Traceback" not in err
    (state / "block-64-1").unlink()
    assert stored(db) == 7

    # 4. the same command finishes what is missing, and only that (in-process, one thread)
    res = invoke(*run, "--db", str(db), "--executor", "local")
    assert res.exit_code == 0, res.stderr
    assert "7 already stored, ran 1 (1 ok" in res.stderr
    got_trials, got_evals = snapshot(db)
    assert got_trials == want_trials  # every trial once, none lost, the same numbers
    assert got_evals == want_evals    # no evals left twice by a killed write


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses SIGKILL/SIGSEGV on pool workers")
@pytest.mark.slow
def test_crashed_workers_fail_their_trial_the_run_goes_on_and_retry_failed_completes(tmp_path, faults, one_thread, invoke):
    plugin, state, config = faults
    config.write_text(config.read_text().replace("[2, 8, 32, 64]", "[8, 64]"))
    db = tmp_path / "crash.duckdb"
    base = ("--plugin", str(plugin), "run", "r", "--config", str(config))
    (state / "block-64-0").touch()  # the victim: killed from outside mid-trial
    (state / "segv-64-1").touch()   # segfaults by itself
    p = start_run(tmp_path, db, *base, "--executor", "process", "--workers", "2")

    wait_until(lambda: (state / "at-64-0").exists(), p, what="the victim trial to start")
    wait_until(lambda: stored(db) >= 3, p, what="the other trials")
    # the run is still going (the victim is blocked): the CLI reads the store meanwhile
    q = invoke("query", "select count(*) as n from trials", "--db", str(db), "--format", "json")
    assert q.exit_code == 0, q.stderr
    assert json.loads(q.output)[0]["n"] == 3
    assert p.poll() is None

    os.kill(int((state / "at-64-0").read_text()), signal.SIGKILL)
    (state / "block-64-0").unlink()
    assert p.wait(timeout=120) == 3, (tmp_path / "run.err").read_text()  # 3: some trials failed
    err = (tmp_path / "run.err").read_text()
    assert "2 failed" in err and "1 failed (WorkerCrashed: worker process" in err and "dofbench show trial" in err
    rows = {(d, seed): (status, error) for d, seed, status, error in
            Store(db).query("select d, seed, status, error from trials")[1]}
    assert rows[(8, 0)][0] == rows[(8, 1)][0] == "ok"
    assert rows[(64, 0)][0] == "failed" and "SIGKILL" in rows[(64, 0)][1]
    assert rows[(64, 1)][0] == "failed" and "SIGSEGV (segmentation fault)" in rows[(64, 1)][1]

    retry = invoke(*base, "--db", str(db), "--executor", "local", "--retry-failed")
    assert retry.exit_code == 0, retry.stderr
    assert "ran 2 (2 ok" in retry.stderr
    assert Store(db).query("select status, count(*) from trials group by status")[1] == [("ok", 4)]


class _Terminator(Method):
    name = "terminator"
    description = "sends SIGTERM to its own process at (d=64, seed 0), like `kill PID` mid-trial"

    def setup(self, ctx):
        if (ctx.d, ctx.spec.seed) == (64, 0):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        theta0 = ctx.theta0
        return Reparam(phi0=theta0.new_zeros(ctx.d), theta=lambda phi: theta0 + phi.sum() * 0)


class _TerminatorPlugin:
    @hookimpl
    def dofbench_methods(self):
        return [_Terminator()]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signal handlers")
def test_sigterm_stops_cleanly_with_a_summary(tiny_config, db, one_thread):
    tiny_config.write_text(tiny_config.read_text().replace('{ name = "random-subspace" }', '"terminator"'))
    s = Session(db, config=tiny_config, use_env=False)
    s.host.register(_TerminatorPlugin(), name="terminator-plugin")
    before = signal.getsignal(signal.SIGTERM)
    [summary] = s.run(["tiny"])  # auto → local: the plugin was registered at run time
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert (summary.interrupted, summary.signal, summary.ok, summary.lost, summary.not_run) == (True, "SIGTERM", 2, 1, 1)
    assert "interrupted (SIGTERM): 1 in flight dropped, 1 not started" in summary.line()
    assert s.query("select count(*) as n from trials").records()[0]["n"] == 2


STACKED_PLUGIN = '''
import os, time
from pathlib import Path

from dofbench.plugin import AffineReparam, Method, hookimpl, make_projection


class Stacked(Method):
    name = "stacked-subspace"
    description = ("a dense random subspace whose seeds are trained in one stack; a trial blocks while "
                   "STATE/block-D-SEED exists and logs each preparation to STATE/log")

    def batchable(self, params):
        return True

    def setup(self, ctx):
        state = Path(os.environ["FAULTS_STATE"])
        key = f"{ctx.d}-{ctx.spec.seed}"
        with open(state / "log", "a") as log:
            log.write(key + "\\n")
        if (state / f"block-{key}").exists():
            (state / f"at-{key}.tmp").write_text(str(os.getpid()))
            (state / f"at-{key}.tmp").rename(state / f"at-{key}")
            while (state / f"block-{key}").exists():
                time.sleep(0.05)
        time.sleep(float(os.environ.get("STACKED_SLEEP", "0")))
        proj = make_projection("dense", ctx.D, ctx.d, ctx.generator("projection", ctx.d), ctx.device)
        origin = ctx.theta0
        return AffineReparam(phi0=origin.new_zeros(ctx.d), theta=lambda phi: origin + proj(phi),
                             origin=origin, projection=proj)


@hookimpl
def dofbench_methods():
    return [Stacked()]
'''


@pytest.fixture
def stacked(tmp_path, monkeypatch):
    plugin = tmp_path / "stacked.py"
    plugin.write_text(STACKED_PLUGIN)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FAULTS_STATE", str(state))
    config = tmp_path / "s.toml"
    config.write_text(SUITE.replace('{ name = "random-subspace" }', '"stacked-subspace"')
                      .replace("dims     = [2, 8, 32, 64]", "dims     = [8, 64]").replace("seeds    = 2", "seeds    = 3"))
    return plugin, state, config


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_resumes_after_sigterm_and_kill_with_batched_seeds_equal_the_uninterrupted_run(tmp_path, stacked):
    """Seeds trained in stacks of 3: after SIGTERM, after kill -9, and with a stack partly stored,
    the finished store holds exactly the numbers of an uninterrupted run."""
    plugin, state, config = stacked
    run = ("--plugin", str(plugin), "run", "r", "--config", str(config), "--executor", "process", "--workers", "2")
    ref_db = tmp_path / "ref.duckdb"
    assert start_run(tmp_path, ref_db, *run, tag="ref").wait(timeout=300) == 0, (tmp_path / "ref.err").read_text()
    want = snapshot(ref_db)
    assert {json.loads(m[6]).get("batched") for m in want[0].values()} == {3}  # every trial in a stack of 3

    for how in ("SIGTERM", "SIGKILL"):
        db = tmp_path / f"{how}.duckdb"
        (state / "block-64-1").touch()
        p = start_run(tmp_path, db, *run, tag=how)
        wait_until(lambda: (state / "at-64-1").exists() and stored(db) >= 3, p, what="a stored and a blocked stack")
        workers = children(p.pid)
        p.send_signal(getattr(signal, how))
        rc = p.wait(timeout=60)
        assert rc == (143 if how == "SIGTERM" else -9), (tmp_path / f"{how}.err").read_text()
        wait_until(lambda: gone(workers), timeout=30, what="the workers to exit")
        for f in ("block-64-1", "at-64-1"):
            (state / f).unlink(missing_ok=True)
        assert stored(db) == 3  # the stack of d = 8
        assert start_run(tmp_path, db, *run, tag=f"{how}-rerun").wait(timeout=300) == 0
        assert snapshot(db) == want, how

    # a stack partly stored (one seed lost, e.g. killed between two commits): the rerun trains the
    # whole stack again, stores only the missing seed, and it equals the uninterrupted one
    db = tmp_path / "SIGKILL.duckdb"
    Store(db).query("select 1")  # a store to edit
    import duckdb

    with duckdb.connect(str(db)) as con:
        gone_id = con.execute("SELECT trial_id FROM trials WHERE d = 64 AND seed = 2").fetchone()[0]
        con.execute("DELETE FROM evals WHERE trial_id = ?", [gone_id])
        con.execute("DELETE FROM trials WHERE trial_id = ?", [gone_id])
    p = start_run(tmp_path, db, *run, tag="partial")
    assert p.wait(timeout=300) == 0
    assert "5 already stored, ran 1 (1 ok" in (tmp_path / "partial.err").read_text()
    assert snapshot(db) == want


@pytest.mark.slow
def test_two_drivers_on_one_store_train_every_trial_once(tmp_path, stacked):
    plugin, state, config = stacked
    config.write_text(config.read_text().replace("dims     = [8, 64]", "dims     = [2, 8, 32, 64]")
                      .replace("seeds    = 3", "seeds    = 2"))
    db = tmp_path / "shared.duckdb"
    env = cli_env(STACKED_SLEEP="0.4")
    run = ("--plugin", str(plugin), "run", "r", "--config", str(config), "--executor", "local")
    a = start_run(tmp_path, db, *run, env=env, tag="a")
    b = start_run(tmp_path, db, *run, env=env, tag="b")
    assert a.wait(timeout=300) == 0, (tmp_path / "a.err").read_text()
    assert b.wait(timeout=300) == 0, (tmp_path / "b.err").read_text()
    log = (state / "log").read_text().split()
    assert sorted(log) == sorted(f"{d}-{s}" for d in (2, 8, 32, 64) for s in (0, 1)), log  # each trained once
    ran = [int(re.search(r"ran (\d+)", (tmp_path / f"{x}.err").read_text()).group(1)) for x in "ab"]
    assert sum(ran) == 8 and min(ran) > 0, ran  # both did part of the work
    assert Store(db).query("select count(*) from trials where status = 'ok'")[1] == [(8,)]
    assert Store(db).query("select count(*) from claims")[1] == [(0,)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses SIGSEGV")
def test_dask_a_crashing_trial_fails_alone(tmp_path, faults, one_thread, invoke):
    """One worker, so every other group runs on the worker that the faulty trial kills each time
    it is retried (its nanny restarts it): only the faulty trial fails, said like the pool says it."""
    plugin, state, config = faults
    config.write_text(config.read_text().replace("[2, 8, 32, 64]", "[8, 64]"))
    (state / "segv-always-8-1").touch()
    db = tmp_path / "dask.duckdb"
    res = invoke("--plugin", str(plugin), "run", "r", "--config", str(config), "--db", str(db),
                 "--executor", "dask", "--workers", "1", "--no-progress")
    assert res.exit_code == 3, res.stderr
    assert "1 failed (WorkerCrashed: Dask worker tcp://" in res.stderr, res.stderr
    rows = {(d, seed): (status, error) for d, seed, status, error in
            Store(db).query("select d, seed, status, error from trials")[1]}
    status, error = rows.pop((8, 1))
    assert status == "failed" and "died while running this trial" in error
    assert {k: v[0] for k, v in rows.items()} == {(8, 0): "ok", (64, 0): "ok", (64, 1): "ok"}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses SIGKILL")
def test_dask_a_cluster_left_without_workers_stops_the_run_within_seconds(tmp_path, faults):
    """A scheduler and one worker without a nanny (as on a cluster whose jobs ended): the trial
    that kills the worker leaves no worker at all. The run says so within seconds (exit 4), keeps
    what finished, stores no failed trial, and the same command finishes with a new worker."""
    plugin, state, config = faults
    config.write_text(config.read_text().replace("[2, 8, 32, 64]", "[8, 64]"))
    (state / "die-64-0").touch()
    db = tmp_path / "cluster.duckdb"
    sched_file = tmp_path / "scheduler.json"
    env = cli_env()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file",
                               str(sched_file), "--port", "0", "--no-dashboard"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]

    def start_worker() -> subprocess.Popen:
        w = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny",
                              "--nthreads", "1", "--no-dashboard"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(w)
        return w

    try:
        wait_until(lambda: sched_file.exists() and sched_file.stat().st_size > 0, procs[0], timeout=60,
                   what="the scheduler")
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        worker = start_worker()
        run = ("--plugin", str(plugin), "run", "r", "--config", str(config), "--scheduler", address)
        p = start_run(tmp_path, db, *run)
        wait_until(lambda: worker.poll() is not None, p, what="the worker to die")
        died = time.monotonic()
        rc = p.wait(timeout=120)
        took = time.monotonic() - died
        err = (tmp_path / "run.err").read_text()
        assert rc == 4, err
        assert "has had no workers for" in err and "rerun the same command to finish" in err, err
        assert "Traceback" not in err
        assert took < 60, took  # the timeout is 10 s; a hang would wait for ever
        print(f"the run stopped {took:.1f}s after its last worker died")
        statuses = dict(((d, seed), status) for d, seed, status in Store(db).query("select d, seed, status from trials")[1])
        assert set(statuses.values()) <= {"ok"} and (64, 0) not in statuses

        (state / "die-64-0").unlink()
        start_worker()
        p = start_run(tmp_path, db, *run, tag="rerun")
        assert p.wait(timeout=180) == 0, (tmp_path / "rerun.err").read_text()
        assert f"{len(statuses)} already stored, ran {4 - len(statuses)} ({4 - len(statuses)} ok" in \
            (tmp_path / "rerun.err").read_text()
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait()
