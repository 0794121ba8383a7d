"""The ``dofbench`` command line and the Python :class:`~dofbench.cli.session.Session` it is built on."""

from dofbench.cli.main import cli, main

__all__ = ["cli", "main"]
