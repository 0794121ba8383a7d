"""dofbench: how many degrees of freedom does a network need to train?

Everything the CLI does is callable from Python through :class:`dofbench.Session` (and the
module-level conveniences below), writing to the same DuckDB store. Plugin authors import from
:mod:`dofbench.plugin`. The names here are loaded on first use, so ``import dofbench.plugin`` in a
worker process does not pull in the CLI.
"""

from __future__ import annotations

from importlib.metadata import version as _version
from typing import Any

__version__ = _version("dofbench")

_API = ("Session", "compare", "leaderboard", "list_components", "plugins", "query", "run", "show_component", "validate")
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from dofbench.cli import session

        return getattr(session, name)
    raise AttributeError(f"module 'dofbench' has no attribute {name!r}")
