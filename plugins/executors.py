"""Built-in executors."""

from __future__ import annotations

from dofbench.executors import LOCAL
from dofbench.hookspecs import hookimpl


@hookimpl
def dofbench_executors():
    return [LOCAL]
