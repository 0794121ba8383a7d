"""Content-addressed artifact cache shared by every trial of a run (and across runs).

An artifact (a burn-in point, a training trajectory, a mask, generated data: a tensor, or a dict
of tensors and numpy arrays) is identified by the hash of the spec parts it depends on, kept in
memory for the life of the process and stored under ``$DOFBENCH_CACHE`` (default
``~/.cache/dofbench``) as a safetensors file, which holds tensors and nothing that can run: loading
one never executes code. Next to it a small JSON record names the artifact's kind and key and the
SHA-256 of the file as written; an entry whose record is missing, names another key (a foreign
file) or whose bytes no longer match (tampered, truncated) is never loaded: it is recomputed, and
a warning says so.

Concurrent workers that need the same artifact compute it once: the computation runs under an
inter-process file lock, and the files are written atomically (temp file + rename), so a reader
never sees half an artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings

try:  # POSIX: serialise the computation of one artifact across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from dofbench.config.identity import canonical_json, content_hash

ENV_CACHE = "DOFBENCH_CACHE"
FORMAT = 1
_TENSOR = "__tensor__"  # the name of a lone tensor inside its file


class ArtifactWarning(UserWarning):
    """An artifact on disk was not loaded (foreign, tampered or unreadable) and is recomputed."""


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dofbench"


class ArtifactCache:
    def __init__(self, root: str | Path | None = None, *, memory: bool = True, disk: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.disk = disk
        self._mem: dict[str, Any] | None = {} if memory else None
        self.hits = 0
        self.misses = 0
        self.computed: list[str] = []  # kinds computed in this process, in order

    def path_for(self, kind: str, key: Any) -> Path:
        return self.root / kind / f"{content_hash([kind, key])}.safetensors"

    def get_or_create(self, kind: str, key: Any, create: Callable[[], Any]) -> Any:
        """Return the artifact ``kind`` for ``key`` (any JSON-able spec), computing it once.
        ``create()`` returns a tensor or a dict of str → tensor or numpy array.

        On disk the computation runs under an inter-process file lock, so parallel workers that
        need the same artifact (the seeds of one d while the next d starts elsewhere) compute it
        once: the others wait and read it."""
        path = self.path_for(kind, key)
        ident = str(path)
        if self._mem is not None and ident in self._mem:
            self.hits += 1
            return self._mem[ident]
        if not self.disk:
            return self._create(ident, kind, create)
        value = self._load(path, kind, key)
        if value is not None:
            return self._remember(ident, value)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                value = self._load(path, kind, key)  # another process may have made it while we waited
                if value is not None:
                    return self._remember(ident, value)
                value = self._create(ident, kind, create)
                self._store(path, kind, key, value)
                return value
            finally:
                if fcntl is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ on disk
    @staticmethod
    def _record_path(path: Path) -> Path:
        return path.with_suffix(".json")

    def _store(self, path: Path, kind: str, key: Any, value: Any) -> None:
        data = _encode(value)
        record = {"format": FORMAT, "kind": kind, "key": canonical_json(key),
                  "sha256": hashlib.sha256(data).hexdigest()}
        _write_atomic(path, data)
        _write_atomic(self._record_path(path), json.dumps(record, sort_keys=True).encode())

    def _load(self, path: Path, kind: str, key: Any) -> Any:
        """The stored artifact, or None: missing (silently), or not to be trusted (with a warning)."""
        record_path = self._record_path(path)
        if not path.exists() and not record_path.exists():
            return None
        problem = None
        try:
            record = json.loads(record_path.read_text())
            data = path.read_bytes()
            if record.get("format") != FORMAT or record.get("kind") != kind or record.get("key") != canonical_json(key):
                problem = "its record names another artifact"
            elif hashlib.sha256(data).hexdigest() != record.get("sha256"):
                problem = "its bytes do not match the hash recorded when it was written"
            else:
                return _decode(data)
        except FileNotFoundError:
            problem = "its record or its data file is missing"
        except Exception as exc:  # unreadable record or data: never trusted
            problem = f"it cannot be read ({exc.__class__.__name__})"
        warnings.warn(f"artifact cache: {path} not loaded: {problem}; recomputing it", ArtifactWarning,
                      stacklevel=3)
        return None

    def _remember(self, ident: str, value: Any) -> Any:
        self.hits += 1
        if self._mem is not None:
            self._mem[ident] = value
        return value

    def _create(self, ident: str, kind: str, create: Callable[[], Any]) -> Any:
        self.misses += 1
        self.computed.append(kind)
        value = create()
        if self._mem is not None:
            self._mem[ident] = value
        return value


def _encode(value: Any) -> bytes:
    """A tensor or a dict of tensors / numpy arrays as safetensors bytes (the kinds in metadata)."""
    if isinstance(value, torch.Tensor):
        items, kinds = {_TENSOR: value}, {_TENSOR: "tensor"}
    elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        items, kinds = {}, {}
        for k, v in value.items():
            if isinstance(v, np.ndarray):
                items[k], kinds[k] = torch.from_numpy(np.ascontiguousarray(v)), "numpy"
            elif isinstance(v, torch.Tensor):
                items[k], kinds[k] = v, "tensor"
            else:
                raise TypeError(f"artifact entry {k!r} is a {type(v).__name__}; artifacts hold tensors and arrays")
    else:
        raise TypeError(f"an artifact is a tensor or a dict of tensors and arrays, not a {type(value).__name__}")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in items.items()}
    return save_tensors(tensors, metadata={"kinds": json.dumps(kinds)})


def _decode(data: bytes) -> Any:
    tensors = load_tensors(data)
    kinds = json.loads(_metadata(data).get("kinds", "{}"))
    if set(kinds) != set(tensors):
        raise ValueError("metadata does not name the stored tensors")
    if list(kinds) == [_TENSOR]:
        return tensors[_TENSOR]
    return {k: tensors[k].numpy() if kinds[k] == "numpy" else tensors[k] for k in kinds}


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (an 8-byte header length, then a JSON header)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__") or {}


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
