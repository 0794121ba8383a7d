"""Claims: two drivers on one store share the work (the end-to-end test with two real drivers is
in tests/run/test_resilience.py)."""

import os
import socket
import subprocess
import sys

import duckdb

from dofbench.results.store import Store


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_live_claim_is_respected_until_released(db):
    store = Store(db)
    a, b = store.claim_owner(), store.claim_owner()
    assert a != b and a.startswith(f"{socket.gethostname()}:")
    assert store.claim_trials(["t1", "t2"], a) == (True, {})
    assert store.claim_trials(["t2", "t3"], b) == (False, {})  # one of them is a's
    assert store.claim_trials(["t3"], b) == (True, {})
    store.release_claims(a)
    assert store.claim_trials(["t1", "t2"], b) == (True, {})


def test_a_claim_past_its_lease_is_free(db):
    store = Store(db)
    a = "elsewhere:1:x"  # a driver on another machine: judged by its heartbeat alone
    assert store.claim_trials(["t1"], a)[0]
    assert not store.claim_trials(["t1"], store.claim_owner())[0]
    with duckdb.connect(str(db)) as raw:
        raw.execute(f"UPDATE claims SET heartbeat = now() - INTERVAL {int(store.CLAIM_LEASE_S) + 1} SECOND")
    assert store.claim_trials(["t1"], store.claim_owner())[0]


def test_the_claims_of_a_killed_driver_of_this_machine_are_free_at_once(db):
    store = Store(db)
    host = socket.gethostname()
    assert store.claim_trials(["dead"], f"{host}:{_dead_pid()}:x")[0]
    assert store.claim_trials(["alive"], f"{host}:{os.getppid()}:y")[0]
    me = store.claim_owner()
    assert store.claim_trials(["dead"], me)[0]       # its process is gone: no need to wait 60 s
    assert not store.claim_trials(["alive"], me)[0]  # a running process keeps its claim


def test_a_claim_reports_what_another_driver_stored_meanwhile(db, synthetic_result):
    store = Store(db)
    r = synthetic_result("m", 10, 0, 0.9)
    store.write_result(r, "s")
    claimed, stored = store.claim_trials([r.trial_id, "other"], store.claim_owner(), ("ok",))
    assert claimed and set(stored) == {r.trial_id} and stored[r.trial_id].status == "ok"
