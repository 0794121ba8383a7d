"""Built-in executors: local, process (a pool of worker processes), dask (dask.distributed), and
auto (process with more than one core, local otherwise)."""

from __future__ import annotations

from dofbench.executors import AUTO, DASK, LOCAL, PROCESS
from dofbench.hookspecs import hookimpl


@hookimpl
def dofbench_executors():
    return [AUTO, LOCAL, PROCESS, DASK]
