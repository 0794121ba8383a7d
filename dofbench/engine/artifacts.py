"""Content-addressed artifact cache shared by every trial of a run (and across runs).

An artifact (a burn-in point, a training trajectory, a mask, generated data) is identified by the
hash of the spec parts it depends on, stored as a torch file under
``$DOFBENCH_CACHE`` (default ``~/.cache/dofbench``), and kept in memory for the life of the
process. Concurrent workers that need the same artifact compute it once: the computation runs
under an inter-process file lock, and the file is written atomically (temp file + rename), so a
reader never sees half an artifact.
"""

from __future__ import annotations

import os
import tempfile

try:  # POSIX: serialise the computation of one artifact across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
from pathlib import Path
from typing import Any, Callable

import torch

from dofbench.config.identity import content_hash

ENV_CACHE = "DOFBENCH_CACHE"


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
        return self.root / kind / f"{content_hash([kind, key])}.pt"

    def get_or_create(self, kind: str, key: Any, create: Callable[[], Any]) -> Any:
        """Return the artifact ``kind`` for ``key`` (any JSON-able spec), computing it once.

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
        value = self._load(path)
        if value is not None:
            return self._remember(ident, value)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                value = self._load(path)  # another process may have made it while we waited
                if value is not None:
                    return self._remember(ident, value)
                value = self._create(ident, kind, create)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                os.close(fd)
                try:
                    torch.save(value, tmp)
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                return value
            finally:
                if fcntl is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self, path: Path) -> Any:
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # a truncated or stale file is recomputed
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
