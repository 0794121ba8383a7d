"""The built-in executors (the interface is :class:`dofbench.plugin.Executor`): ``submit`` takes a
group of :class:`~dofbench.config.schemas.TrialSpec` and returns a Future of their
:class:`~dofbench.engine.result.TrialResult` s. The scheduler keeps at most ``max_in_flight``
groups pending and writes each result as it arrives, so workers never touch the store.

Registered by this module's ``dofbench_executors`` hook, an entry point like any plugin's (more
come from other plugins' hooks):

- ``local``: in the driver process, one group at a time (debugging, notebooks, and the only
  executor that sees plugins registered at run time through the API);
- ``process``: a pool of worker processes (``spawn`` by default, so torch is safe), one torch
  thread each, as many as cores by default, started on first use. A worker that dies (segfault,
  out-of-memory kill) fails exactly the group it was running and is replaced;
- ``dask``: a ``dask.distributed`` Client to a scheduler address (or an existing Client or
  cluster object, e.g. from dask-jobqueue) or a ``LocalCluster`` of N single-threaded workers.
  A group whose worker dies is retried on other workers (Dask's ``allowed-failures``, 3 by
  default) and then fails as :class:`WorkerCrashed`; on the LocalCluster at most one group is in
  flight per single-threaded worker, so no group waits on a worker that another one kills. A
  cluster left without workers for
  ``distributed.scheduler.no-workers-timeout`` (10 s unless set; the LocalCluster restarts
  its workers first, see :meth:`DaskExecutor.check`) stops the run with :class:`~dofbench.errors.ExecutorLost`;
- ``auto``: ``process`` when the machine has more than one core, ``local`` otherwise, and
  ``local`` whenever the host has plugins registered at run time that a worker cannot re-import.

With CUDA, pool workers (and Dask workers, by their index) are spread over the visible devices.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from multiprocessing.connection import wait as mp_wait
from typing import Any, Callable

from dofbench.config.identity import canonical_json
from dofbench.config.runtime import Runtime
from dofbench.config.schemas import TrialSpec
from dofbench.engine.result import TrialResult
from dofbench.engine.worker import Worker
from dofbench.errors import DofbenchError, ExecutorLost
from dofbench.plugin.executor import Executor, ExecutorFactory
from dofbench.plugin.hookspecs import hookimpl
from dofbench.run.host import Host


class WorkerCrashed(RuntimeError):
    """A worker process died while running a group (segfault, out of memory, killed)."""


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cuda_devices(device: str) -> list[str] | None:
    """The devices to spread workers over: every visible GPU for ``auto``/``cuda`` when CUDA is
    available, else ``None`` (every worker uses ``device`` as given)."""
    if device not in ("auto", "cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or None


def runtime_only_plugins(host) -> list[str]:
    """Names of plugins registered at run time (``Host.register``): a worker process rebuilds
    its host from module names and cannot re-import these."""
    return [r.name for r in host.records if r.source == "api"]


# ----------------------------------------------------------------------------- worker entry point
_WORKERS: dict[str, Worker] = {}


def run_group(specs: list[TrialSpec], runtime: dict[str, Any]) -> list[TrialResult]:
    """What a pool process or a Dask task runs: a group of trial specs in, their results out.
    The worker rebuilds the plugin host from the runtime's plugin modules; one Worker per runtime
    is kept per process, so data and artifacts are loaded once."""
    rt = Runtime(**runtime)
    key = canonical_json(rt.as_dict())
    if key not in _WORKERS:
        _WORKERS[key] = Worker(rt, Host(rt.plugins, use_env=False))
    return _WORKERS[key].run_group(list(specs))


# --------------------------------------------------------------------------------------- local
class LocalExecutor(Executor):
    """Runs each group synchronously in the driver process."""

    name = "local"
    max_in_flight = 1

    def __init__(self, host, runtime: Runtime):
        self.worker = Worker(runtime, host)

    def submit(self, specs):
        fut: Future = Future()
        try:
            fut.set_result(self.worker.run_group(list(specs)))
        except BaseException as exc:  # KeyboardInterrupt propagates to the runner
            if not isinstance(exc, Exception):
                raise
            fut.set_exception(exc)
        return fut


def _create_local(host, runtime: Runtime, workers: int | None = None, options: dict | None = None) -> Executor:
    return LocalExecutor(host, runtime)


# ------------------------------------------------------------------------------------- process
def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker when the driver dies (even by kill -9)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort; EOF on the pipe stops the worker too
        pass


def _serve(conn, runtime: dict[str, Any], parent_pid: int | None, target: Callable = run_group) -> None:
    """Main loop of a pool worker: receive a group, run it (``target(specs, runtime)``), send the
    results back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's business
    _die_with_parent()
    if parent_pid is not None and os.getppid() != parent_pid:  # the driver died before the line above took effect
        return
    while True:
        try:
            specs = conn.recv()
        except (EOFError, OSError):
            return
        if specs is None:
            return
        try:
            out = ("ok", target(specs, runtime))
        except Exception as exc:  # the worker itself failed (e.g. a plugin that cannot load)
            out = ("error", f"{exc.__class__.__name__}: {' '.join(str(exc).split())}")
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):
            return


def _death_reason(pid: int | None, exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {"SIGSEGV": "segmentation fault", "SIGKILL": "killed: out of memory, or by someone",
                "SIGBUS": "bus error", "SIGABRT": "aborted", "SIGTERM": "terminated"}.get(name)
        how = f"{name} ({hint})" if hint else name
    else:
        how = f"exit code {exitcode}"
    return f"worker process {pid} died with {how} while running this trial"


class _Slot:
    """One worker process, its pipe and the job it runs."""

    def __init__(self, ctx, runtime: dict[str, Any], parent: int | None, target: Callable):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_serve, args=(child, runtime, parent, target), daemon=True,
                                   name="dofbench-worker")
        self.process.start()
        child.close()
        self.job: tuple[Future, list] | None = None


class ProcessExecutor(Executor):
    """A pool of worker processes that knows which group each worker runs, so a crash fails
    exactly that group and a fresh worker takes its place."""

    name = "process"

    def __init__(self, runtime: Runtime, workers: int | None = None, start_method: str = "spawn",
                 target: Callable[[list, dict], list] = run_group):
        if start_method not in ("spawn", "forkserver"):
            raise DofbenchError(f"executor option start_method={start_method!r}; allowed: spawn, forkserver "
                                "(fork is not safe with torch)")
        self.n = self.workers = workers or available_cores()
        self.max_in_flight = 2 * self.n  # one running and one queued per worker
        self._ctx = mp.get_context(start_method)
        devices = cuda_devices(runtime.device)
        base = dict(runtime.as_dict(), threads=runtime.threads or 1)
        self._runtimes = [dict(base, device=devices[i % len(devices)]) if devices else base
                          for i in range(self.n)]
        self._slots: list[_Slot] = []
        self._queue: deque[tuple[Future, list]] = deque()  # submitted, not yet seen by the manager
        self._backlog: deque[tuple[Future, list]] = deque()  # seen, waiting for a free worker
        self._target = target  # what a worker runs: importable by name in a fresh process
        self._parent = os.getpid() if start_method == "spawn" else None  # forkserver: not our child
        self._cancel = False
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = mp.Pipe(duplex=False)
        self._closed = False
        self._thread: threading.Thread | None = None
        self.crashes = 0

    # -- public
    def submit(self, specs):
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            self._queue.append((fut, specs))
            if self._thread is None:  # workers start on first use: a fully stored suite costs nothing
                self._thread = threading.Thread(target=self._manage, name="dofbench-pool", daemon=True)
                self._thread.start()
        self._wake()
        return fut

    def close(self, cancel: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel = cancel
        self._wake()
        if self._thread is not None:
            self._thread.join()
        self._wake_r.close()
        self._wake_w.close()

    # -- the manager thread (the only one that touches the worker slots)
    def _wake(self) -> None:
        try:
            self._wake_w.send(None)
        except OSError:  # closed
            pass

    def _manage(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closed:
                        break
                    jobs = list(self._queue)
                    self._queue.clear()
                self._dispatch(jobs)
                busy = [s for s in self._slots if s.job is not None]
                handles = [self._wake_r] + [s.conn for s in busy] + [s.process.sentinel for s in busy]
                ready = set(mp_wait(handles, timeout=5.0))
                if self._wake_r in ready:
                    while self._wake_r.poll():
                        self._wake_r.recv()
                for slot in busy:
                    if slot.conn in ready or slot.process.sentinel in ready:
                        self._collect(slot)
        except BaseException as exc:  # never leave the runner waiting on futures that cannot finish
            self._fail_all(RuntimeError(f"process pool failed: {exc.__class__.__name__}: {exc}"))
            raise
        finally:
            self._shutdown()

    def _dispatch(self, jobs: list[tuple[Future, list]]) -> None:
        self._backlog.extend(jobs)
        while self._backlog:
            for i, slot in enumerate(self._slots):  # a worker that died while idle is replaced
                if slot.job is None and not slot.process.is_alive():
                    self._replace(i)
            idle = [s for s in self._slots if s.job is None]
            if not idle:
                if len(self._slots) >= self.n:
                    return
                self._slots.append(_Slot(self._ctx, self._runtimes[len(self._slots)], self._parent, self._target))
                continue
            fut, specs = self._backlog.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                idle[0].conn.send(specs)
            except OSError:  # died just now: retry the group on a fresh worker
                self._backlog.appendleft((fut, specs))
                self._replace(self._slots.index(idle[0]))
                continue
            idle[0].job = (fut, specs)

    def _collect(self, slot: _Slot) -> None:
        fut, _ = slot.job
        try:
            if slot.conn.poll():
                kind, payload = slot.conn.recv()
                slot.job = None
                if kind == "ok":
                    fut.set_result(payload)
                else:
                    fut.set_exception(RuntimeError(payload))
                return
        except Exception:  # EOF or a message cut short by the worker's death
            pass
        if slot.process.is_alive():  # woke for nothing
            return
        slot.process.join()
        slot.job = None
        self.crashes += 1
        fut.set_exception(WorkerCrashed(_death_reason(slot.process.pid, slot.process.exitcode)))
        # the dead slot is replaced by _dispatch when there is work for it

    def _replace(self, i: int) -> None:
        self._slots[i].conn.close()
        self._slots[i].process.join(timeout=1)  # reap it
        self._slots[i] = _Slot(self._ctx, self._runtimes[i], self._parent, self._target)

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            jobs = list(self._queue)
            self._queue.clear()
        for fut, _ in [*self._backlog, *jobs] + [s.job for s in self._slots if s.job is not None]:
            if not fut.done():
                if fut.running() or fut.set_running_or_notify_cancel():
                    fut.set_exception(exc)
        self._backlog.clear()

    def _shutdown(self) -> None:
        with self._lock:
            jobs = list(self._queue)
            self._queue.clear()
        for fut, _ in [*self._backlog, *jobs]:
            fut.cancel()
        self._backlog.clear()
        for slot in self._slots:
            if slot.job is not None or self._cancel:  # stop running work now
                if slot.job is not None and not slot.job[0].done():
                    slot.job[0].set_exception(CancelledError())
                slot.process.terminate()
            else:
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
        for slot in self._slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
        self._slots.clear()


def _create_process(host, runtime: Runtime, workers: int | None = None, options: dict | None = None) -> Executor:
    options = dict(options or {})
    _refuse_runtime_plugins(host, "process")
    return ProcessExecutor(runtime, workers=workers, start_method=options.get("start_method") or "spawn")


def _refuse_runtime_plugins(host, executor: str) -> None:
    names = runtime_only_plugins(host)
    if names:
        raise DofbenchError(
            f"--executor {executor}: plugins registered at run time ({', '.join(names)}) cannot be "
            "re-imported by worker processes; use executor 'local' (or 'auto'), or load them as modules "
            "with --plugin MODULE / DOFBENCH_PLUGINS")


# ---------------------------------------------------------------------------------------- dask
def _dask_task(specs: list[TrialSpec], runtime: dict[str, Any]) -> list[TrialResult]:
    """The task each Dask worker runs: place it on a GPU by worker index, then run the group."""
    if runtime.get("device") in ("auto", "cuda"):
        devices = cuda_devices(runtime["device"])
        if devices and len(devices) > 1:
            from distributed import get_worker

            name = get_worker().name
            idx = name if isinstance(name, int) else sum(map(ord, str(name)))
            runtime = dict(runtime, device=devices[idx % len(devices)])
    return run_group(specs, runtime)


NO_WORKERS_TIMEOUT_S = 10.0  # unless distributed.scheduler.no-workers-timeout says otherwise


def no_workers_timeout() -> float:
    """How long a cluster may have no workers while groups are pending: Dask's own
    ``distributed.scheduler.no-workers-timeout`` when it is set, else 10 s."""
    import dask
    from dask.utils import parse_timedelta

    value = dask.config.get("distributed.scheduler.no-workers-timeout", None)
    return float(parse_timedelta(value)) if value else NO_WORKERS_TIMEOUT_S


def restarting_workers(cluster: Any) -> bool:
    """Whether a cluster dofbench started has a nanny still running, i.e. a worker that died is
    being restarted: the scheduler then counts no worker (a restarted worker imports torch again,
    which took more than 10 s on a loaded 2-core machine, and one that dies again at once is never
    seen), but the cluster is not lost. Only a cluster whose nannies have all stopped is."""
    return any(getattr(getattr(n, "status", None), "name", "") == "running"
               for n in getattr(cluster, "workers", {}).values())


def _scheduler_isolation(dask_scheduler=None) -> tuple[float, int]:
    """Run on a Dask scheduler: its worker saturation and allowed failures."""
    return float(dask_scheduler.WORKER_SATURATION), int(dask_scheduler.allowed_failures)


class DaskExecutor(Executor):
    """Trial groups as ``dask.distributed`` tasks; results come back to the driver."""

    name = "dask"

    def __init__(self, runtime: Runtime, workers: int | None = None, scheduler: str | None = None,
                 client: Any = None, cluster: Any = None):
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError:
            raise DofbenchError("--executor dask needs dask.distributed: pip install 'dofbench[dask]'") from None
        self.runtime = dict(runtime.as_dict(), threads=runtime.threads or 1)
        self._own_client = client is None
        self.cluster = None
        if client is not None:
            self.client = client
        elif cluster is not None:
            self.client = Client(cluster)
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout=30)
            except (OSError, TimeoutError, ValueError) as exc:
                raise DofbenchError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler "
                                    f"({' '.join(str(exc).split())})") from None
        else:
            self.cluster = LocalCluster(n_workers=workers or available_cores(), threads_per_worker=1,
                                        processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL)
            self.client = Client(self.cluster)
        self.where = scheduler or getattr(self.client.scheduler, "address", None) or "the Dask scheduler"
        nthreads = self.client.nthreads()
        if self.cluster is None:
            self._warn_if_not_isolated(nthreads)
        total = self.workers = sum(nthreads.values())
        # The LocalCluster gets one group per worker thread: each group then runs on a worker of its
        # own (the scheduler places a task on an idle worker), and none waits on a worker that another
        # kills. A remote (possibly adaptive) cluster sees a deep queue, which its scheduler holds back.
        self.max_in_flight = max(1, total) if self.cluster is not None else max(256, 2 * total)
        self.no_workers_timeout = no_workers_timeout()
        self._pending: dict[Any, Any] = {}  # key -> dask future, until it is done
        self._lock = threading.Lock()
        # results are gathered off Dask's single callback thread (a gather can wait on a recomputation)
        self._fetch = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dofbench-dask-fetch")
        self._last_check = 0.0
        self._no_workers_since: float | None = None
        self._closed = False

    def _warn_if_not_isolated(self, nthreads: dict) -> None:
        """A scheduler that retries nothing (allowed-failures 0) fails every group that merely
        waited on, or shared, a worker that another group killed: say so."""
        try:
            saturation, allowed = self.client.run_on_scheduler(_scheduler_isolation)
        except Exception:  # a scheduler that refuses to run functions: nothing to say
            return
        if allowed == 0 and (saturation > 1.0 or any(n > 1 for n in nthreads.values())):
            warnings.warn(f"{self.where}: with distributed.scheduler.allowed-failures 0, a trial that kills its "
                          "Dask worker also fails the trials queued or running with it; allow retries, or run "
                          "single-threaded workers (--nthreads 1) with worker-saturation 1.0", stacklevel=3)

    def submit(self, specs):
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        dfut = self.client.submit(_dask_task, specs, self.runtime, pure=False)
        with self._lock:
            self._pending[dfut.key] = dfut

        def done(df) -> None:
            with self._lock:
                self._pending.pop(df.key, None)
            if fut.done():
                return
            if df.status == "finished":
                self._fetch.submit(self._gather, df, fut)
            elif df.status == "cancelled":
                fut.set_exception(CancelledError())
            else:
                fut.set_exception(self._explain(df.exception()))

        dfut.add_done_callback(done)
        return fut

    def _gather(self, df, fut: Future) -> None:
        try:
            result = df.result()
        except CancelledError as exc:
            fut.set_exception(exc)
        except Exception as exc:
            fut.set_exception(self._explain(exc))
        else:
            fut.set_result(result)

    @staticmethod
    def _explain(exc: BaseException) -> BaseException:
        """A worker's death, said like the process pool says it."""
        if exc.__class__.__name__ == "KilledWorker":
            worker = getattr(getattr(exc, "last_worker", None), "address", None) or "a Dask worker"
            tries = getattr(exc, "allowed_failures", 0) + 1
            return WorkerCrashed(f"Dask worker {worker} died while running this trial ({tries} workers died "
                                 "trying; a segmentation fault, out of memory or killed: their logs say which)")
        return exc

    def _local_workers_back(self) -> bool:
        """For the LocalCluster dofbench started: whether a nanny is restarting a worker, or, where
        every nanny gave up (a restart that timed out on a loaded machine), whether starting the
        cluster's workers anew begins (``scale``). Never for a cluster of the user's."""
        if self.cluster is None:
            return False
        if restarting_workers(self.cluster):
            return True
        try:
            self.cluster.scale(self.workers)
        except Exception:  # a cluster that cannot start workers any more is lost
            return False
        return restarting_workers(self.cluster)

    def check(self) -> None:
        """Raise :class:`ExecutorLost` once the cluster has had no workers for
        ``no_workers_timeout`` seconds (asked at most every 2 s)."""
        now = time.monotonic()
        if self._closed or now - self._last_check < 2.0:
            return
        self._last_check = now
        try:
            workers = len(self.client.nthreads(callback_timeout=5))
        except Exception:  # the scheduler itself is unreachable: no workers either
            workers = 0
        if workers or self._local_workers_back():
            self._no_workers_since = None
            return
        if self._no_workers_since is None:
            self._no_workers_since = now
        if now - self._no_workers_since >= self.no_workers_timeout:
            with self._lock:
                pending = len(self._pending)
            raise ExecutorLost(f"{self.where} has had no workers for {now - self._no_workers_since:.0f}s "
                               f"with {pending} groups of trials waiting (start workers, or set "
                               "distributed.scheduler.no-workers-timeout for a cluster that scales up slowly)")

    def close(self, cancel: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            running = list(self._pending.values())
        if cancel and running:
            try:
                self.client.cancel(running, force=True)
            except Exception:  # the cluster may already be gone
                pass
        self._fetch.shutdown(wait=not cancel, cancel_futures=cancel)
        if self._own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _create_dask(host, runtime: Runtime, workers: int | None = None, options: dict | None = None) -> Executor:
    options = dict(options or {})
    _refuse_runtime_plugins(host, "dask")
    return DaskExecutor(runtime, workers=workers, scheduler=options.get("scheduler"),
                        client=options.get("client"), cluster=options.get("cluster"))


# ---------------------------------------------------------------------------------------- auto
def choose_auto(host, workers: int | None = None, options: dict | None = None) -> str:
    """What ``auto`` means here: dask if a scheduler/client/cluster is given; local with one core,
    one worker or plugins registered at run time; process otherwise."""
    options = options or {}
    if any(options.get(k) for k in ("scheduler", "client", "cluster")):
        return "dask"
    if runtime_only_plugins(host) or available_cores() < 2 or workers == 1:
        return "local"
    return "process"


def _create_auto(host, runtime: Runtime, workers: int | None = None, options: dict | None = None) -> Executor:
    name = choose_auto(host, workers, options)
    return {"local": _create_local, "process": _create_process, "dask": _create_dask}[name](
        host, runtime, workers=workers, options=options)


LOCAL = ExecutorFactory("local", "in the driver process, one trial at a time", _create_local)
PROCESS = ExecutorFactory("process", "a pool of worker processes (spawn), one torch thread each; "
                          "--workers N (default: one per core)", _create_process)
DASK = ExecutorFactory("dask", "dask.distributed: --scheduler ADDRESS, or a LocalCluster of --workers N "
                       "single-threaded workers", _create_dask)
AUTO = ExecutorFactory("auto", "process with more than one core, local otherwise (and local when plugins "
                       "were registered at run time through the API)", _create_auto)


@hookimpl
def dofbench_executors():
    """The built-in executors, registered through the ``dofbench`` entry-point group like any
    plugin's."""
    return [AUTO, LOCAL, PROCESS, DASK]
