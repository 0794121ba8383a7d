"""dofbench: how many degrees of freedom does a network need to train?

Everything the CLI does is callable from Python (see :mod:`dofbench.api`) and writes to the same
DuckDB store.
"""

__version__ = "0.1.0"

from dofbench.api import (  # noqa: E402
    Session, leaderboard, list_components, plugins, query, run, show_component, validate,
)

__all__ = ["Session", "leaderboard", "list_components", "plugins", "query", "run",
           "show_component", "validate", "__version__"]
