"""What the command modules share: the session of a command and its common options."""

from __future__ import annotations

from typing import Any

import click

from dofbench.cli.session import Session
from dofbench.results.table import FORMATS
from dofbench.run.host import Host


def session(ctx: click.Context, **kwargs: Any) -> Session:
    """The Session of this command, on the host that ``main`` built (plugins loaded once)."""
    host: Host = ctx.obj["host"]
    return Session(host=host, **kwargs)


def db_option(f):
    return click.option("--db", type=click.Path(), default=None,
                        help="DuckDB results store (default: $DOFBENCH_DB or ./dofbench.duckdb).")(f)


def format_option(default: str = "table", choices=FORMATS):
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format.")
