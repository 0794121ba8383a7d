"""The ``dofbench`` command line (click): the root group and the entry point. Each command group
lives in a module of its own and is a thin layer over :class:`dofbench.cli.session.Session`.

Bad input ends with one line ``Error: …`` naming the field and what is allowed, and a non-zero
exit code; set ``DOFBENCH_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import os
import sys

import click

from dofbench.cli import components, plots, results, run, theory
from dofbench.cli.common import db_option, plugin_option
from dofbench.errors import DofbenchError
from dofbench.run.host import Host


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@plugin_option
@db_option
@click.version_option(package_name="dofbench")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """dofbench: how many degrees of freedom does a network need to train?

    Run standard suites of DOF-reduction methods (random, burn-in and lottery subspaces, lottery
    tickets, pruning), store every trial in DuckDB, compare the methods' threshold training
    dimensions d* and query everything with SQL. `dofbench list suites` to start; --plugin and
    --db go before or after the command.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    if "host" not in ctx.obj:
        ctx.obj["host"] = Host(list(ctx.obj.get("plugins", [])))


def _prescan_plugins(argv: list[str]) -> list[str]:
    out = []
    for i, a in enumerate(argv):
        if a == "--plugin" and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("DOFBENCH_DEBUG"))
    try:
        host = Host(_prescan_plugins(argv))
        host.add_commands(cli)
        cli.main(args=argv, prog_name="dofbench", obj={"host": host}, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line, with where to read more (not click's usage block)
        if isinstance(exc, click.exceptions.NoSuchOption) and exc.option_name in ("--plugin", "--db"):
            # a plugin's own command, which does not take the shared options after it
            exc.message = (exc.message.rstrip(".") + f"; this command takes {exc.option_name} before it: "
                           f"dofbench {exc.option_name} VALUE COMMAND …")
        where = exc.ctx.command_path if exc.ctx is not None else "dofbench"
        click.echo(f"Error: {' '.join(exc.format_message().split())} (see `{where} --help`)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except DofbenchError as exc:
        if debug:
            raise
        for line in str(exc).splitlines() or [exc.__class__.__name__]:
            click.echo(f"Error: {line}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # never a traceback for the user; DOFBENCH_DEBUG=1 shows it
        if debug:
            raise
        click.echo(f"Error: {exc.__class__.__name__}: {' '.join(str(exc).split())} "
                   "(set DOFBENCH_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)


for _command in (run.run, run.validate, components.plugins, components.list_, components.show,
                 results.compare, results.leaderboard, results.query, results.migrate, plots.plot, plots.report,
                 theory.theory):
    cli.add_command(_command)
