"""The "how" of a run: device, plugins, cache and data locations. Never part of a trial's identity."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Runtime:
    """How trials are run: on which device, with which plugin modules (a worker process imports
    them again), where artifacts are cached and data live, whether downloads are allowed, how many
    torch threads a worker uses."""

    device: str = "auto"
    plugins: list[str] = field(default_factory=list)
    cache_dir: str | None = None
    data_root: str | None = None
    download: bool = False
    threads: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
