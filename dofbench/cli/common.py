"""What the command modules share: the session of a command and its common options.

``--plugin`` and ``--db`` are accepted before or after the subcommand (``dofbench --db r.duckdb
leaderboard`` and ``dofbench leaderboard --db r.duckdb`` are the same); a subcommand's ``--db``
wins over the group's. Tables are cut to the terminal's width (100 columns when it is unknown;
``COLUMNS`` overrides) unless ``--wide`` or stdout is a file or a pipe.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import click

from dofbench.cli.session import Session
from dofbench.results.table import FORMATS
from dofbench.run.host import Host

DEFAULT_WIDTH = 100


def _remember_plugins(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    if value:
        ctx.ensure_object(dict)
        ctx.obj.setdefault("plugins", [])
        ctx.obj["plugins"] += [v for v in value if v not in ctx.obj["plugins"]]
    return value


def plugin_option(f):
    """``--plugin MODULE`` (repeatable), the same before or after the subcommand."""
    return click.option("--plugin", "plugins", multiple=True, metavar="MODULE", expose_value=False,
                        callback=_remember_plugins, is_eager=True,
                        help="Load a plugin module (importable name or path to a .py file); repeatable. "
                             "Also: DOFBENCH_PLUGINS=mod1,mod2.")(f)


def session(ctx: click.Context, **kwargs: Any) -> Session:
    """The Session of this command, on the host that ``main`` built (plugins loaded once; a
    ``--plugin`` the host has not loaded yet, e.g. when click is driven without ``main``, is
    loaded here); ``db`` falls back to the group's ``--db``."""
    host: Host = ctx.obj["host"]
    wanted = list(ctx.obj.get("plugins", []))
    loaded = [r.module for r in host.records if r.source == "--plugin"]
    missing = [p for p in wanted if p not in loaded]
    if missing:
        host = ctx.obj["host"] = Host(loaded + missing)
    if "db" in kwargs and kwargs["db"] is None:
        kwargs["db"] = ctx.obj.get("db")
    return Session(host=host, **kwargs)


def db_option(f):
    return click.option("--db", type=click.Path(), default=None,
                        help="DuckDB results store (default: $DOFBENCH_DB or ./dofbench.duckdb).")(f)


def format_option(default: str = "table", choices=FORMATS):
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format.")


def wide_option(f):
    return click.option("--wide", is_flag=True,
                        help=f"Show every cell in full (tables are otherwise cut to the terminal's width, "
                             f"{DEFAULT_WIDTH} columns when unknown).")(f)


def table_width(wide: bool) -> int | None:
    """The width tables are cut to: None with ``--wide`` or when stdout is not a terminal (a file
    or a pipe gets every column unless COLUMNS says otherwise), else the terminal's (COLUMNS, the
    terminal's width, or 100)."""
    if wide or ("COLUMNS" not in os.environ and not sys.stdout.isatty()):
        return None
    return max(40, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
