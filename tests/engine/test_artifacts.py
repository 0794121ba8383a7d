"""The artifact cache stores tensors (safetensors) with a content hash, and never loads anything
that could run code: a foreign, tampered or legacy pickled entry is recomputed, with a warning."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from dofbench.engine.artifacts import ArtifactCache, ArtifactWarning


class Payload:
    """Pickled, it would create a file when unpickled."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def _make(calls):
    def create():
        calls.append(1)
        return {"theta": torch.arange(4.0), "mask": np.array([True, False])}

    return create


def test_roundtrip_of_tensors_and_arrays_across_processes_caches(tmp_path):
    calls = []
    a = ArtifactCache(tmp_path).get_or_create("k", {"x": 1}, _make(calls))
    b = ArtifactCache(tmp_path).get_or_create("k", {"x": 1}, _make(calls))  # a new process: from disk
    assert calls == [1]
    assert torch.equal(a["theta"], b["theta"]) and b["mask"].dtype == np.bool_ and list(b["mask"]) == [True, False]
    lone = ArtifactCache(tmp_path).get_or_create("t", 0, lambda: torch.ones(3, 2)[:, 0])  # a view: stored alone
    assert torch.equal(ArtifactCache(tmp_path).get_or_create("t", 0, lambda: 1 / 0), lone)
    with pytest.raises(TypeError, match="tensor"):
        ArtifactCache(tmp_path).get_or_create("bad", 0, lambda: {"x": object()})


@pytest.mark.parametrize("how", ["data replaced, record kept", "data and record replaced consistently",
                                 "record names another key", "truncated", "record missing"])
def test_a_tampered_entry_is_recomputed_and_never_executed(tmp_path, how):
    import hashlib

    calls = []
    cache_dir = tmp_path / "cache"
    ArtifactCache(cache_dir).get_or_create("k", {"x": 1}, _make(calls))
    path = ArtifactCache(cache_dir).path_for("k", {"x": 1})
    record = path.with_suffix(".json")
    evidence = tmp_path / "EXECUTED"
    evil = pickle.dumps(Payload(evidence))
    torch.save(Payload(evidence), tmp_path / "evil.pt")
    if how == "data replaced, record kept":
        path.write_bytes(evil)
    elif how == "data and record replaced consistently":
        path.write_bytes((tmp_path / "evil.pt").read_bytes())
        rec = json.loads(record.read_text())
        rec["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        record.write_text(json.dumps(rec))
    elif how == "record names another key":
        rec = json.loads(record.read_text())
        rec["key"] = '{"x":2}'
        record.write_text(json.dumps(rec))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:20])
    else:
        record.unlink()
    with pytest.warns(ArtifactWarning, match="not loaded: .*recomputing"):
        again = ArtifactCache(cache_dir).get_or_create("k", {"x": 1}, _make(calls))
    assert calls == [1, 1] and torch.equal(again["theta"], torch.arange(4.0))
    assert not evidence.exists()  # the payload never ran
    ArtifactCache(cache_dir).get_or_create("k", {"x": 1}, _make(calls))  # rewritten: trusted again
    assert calls == [1, 1]


def test_a_legacy_pickled_cache_file_is_ignored(tmp_path):
    evidence = tmp_path / "EXECUTED"
    cache = ArtifactCache(tmp_path / "cache")
    legacy = cache.path_for("k", 1).with_suffix(".pt")  # where earlier versions wrote torch.save files
    legacy.parent.mkdir(parents=True)
    torch.save(Payload(evidence), legacy)
    calls = []
    cache.get_or_create("k", 1, _make(calls))
    assert calls == [1] and not evidence.exists()
