"""The ``dofbench`` command line (click). Each command is a thin layer over :mod:`dofbench.api`.

Bad input ends with one line ``Error: …`` naming the field and what is allowed, and a non-zero
exit code; set ``DOFBENCH_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from dofbench.api import Session
from dofbench.errors import DofbenchError
from dofbench.host import Host
from dofbench.table import FORMATS, Table


class CliError(click.ClickException):
    exit_code = 1


def _session(ctx: click.Context, **kwargs: Any) -> Session:
    host: Host = ctx.obj["host"]
    return Session(host=host, **kwargs)


def db_option(f):
    return click.option("--db", type=click.Path(dir_okay=False), default=None,
                        help="DuckDB results store (default: $DOFBENCH_DB or ./dofbench.duckdb).")(f)


def format_option(default: str = "table", choices=FORMATS):
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
              help="Load a plugin module (importable name or path to a .py file); repeatable. "
                   "Also: DOFBENCH_PLUGINS=mod1,mod2.")
@click.version_option(package_name="dofbench")
@click.pass_context
def cli(ctx: click.Context, plugins: tuple[str, ...]) -> None:
    """dofbench: how many degrees of freedom does a network need to train?

    Run standard suites of DOF-reduction methods (random, burn-in and lottery subspaces, lottery
    tickets, pruning), store every trial in DuckDB, and query the success probabilities and
    threshold training dimensions d* with SQL.
    """
    ctx.ensure_object(dict)
    if "host" not in ctx.obj:
        ctx.obj["host"] = Host(list(plugins))


@cli.command()
@click.argument("suites", nargs=-1, required=True)
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="Suites file (default: the packaged benchmarks.toml).")
@db_option
@click.option("--force", is_flag=True, help="Rerun trials that are already stored.")
@click.option("--retry-failed", is_flag=True, help="Rerun trials stored as failed.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would run; run and write nothing.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N.")
@click.option("--executor", default="auto", show_default=True,
              help="How trials are run: auto (process with more than one core, else local), local, process, "
                   "dask (see `dofbench list executors`).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker count for process/dask (default: one per core).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (tcp://host:8786); implies --executor dask. Without it "
                   "--executor dask starts a LocalCluster of --workers workers.")
@click.option("--max-trials", type=int, default=None, metavar="N",
              help="Trial budget: start at most N trials per suite; rerun later to finish.")
@click.option("--time-budget", default=None, metavar="DURATION",
              help="Time budget per suite (90, 90s, 15m, 2h): no new trial starts after it; running ones finish.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Where on-disk datasets live (default: $DOFBENCH_DATA).")
@click.option("--download", is_flag=True, help="Allow datasets to be downloaded (needs a network).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@format_option()
@click.pass_context
def run(ctx, suites, config, db, force, retry_failed, dry_run, device, executor, workers, scheduler,
        max_trials, time_budget, data_root, download, no_progress, fmt):
    """Run SUITES (names in the suites file); print the leaderboard at the end.

    Trials already stored are skipped, so an interrupted run (Ctrl-C, SIGTERM, a killed machine)
    is finished by running the same command again."""
    s = _session(ctx, db=db, config=config, device=device, data_root=data_root, download=download)
    if dry_run:
        click.echo(s.plan(suites, force=force).render(fmt))
        return
    summaries = s.run(suites, force=force, retry_failed=retry_failed, executor=executor, workers=workers,
                      scheduler=scheduler, max_trials=max_trials, time_budget=parse_duration(time_budget),
                      progress=not no_progress and sys.stderr.isatty())
    for summary in summaries:
        click.echo(summary.line(), err=True)
        for err in summary.errors[:5]:
            click.echo(f"  failed {err}", err=True)
    names = [x.suite for x in summaries]
    for name in names:
        click.echo(s.leaderboard(name).render(fmt))
    stopped = [x for x in summaries if x.interrupted]
    if stopped:
        sys.exit(143 if stopped[0].signal == "SIGTERM" else 130)


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '15m', '2h', '1d' → seconds."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    scale = units.get(raw[-1:], None)
    try:
        value = float(raw[:-1] if scale else raw) * (scale or 1)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DofbenchError(f"--time-budget {text!r}: expected a positive duration such as 90, 90s, 15m or 2h")
    return value


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def validate(ctx, file):
    """Validate a suites FILE (default: the packaged benchmarks.toml) without running it."""
    table = _session(ctx).validate(file)
    click.echo(table.render())
    click.echo(f"{len(table)} suites valid", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@click.pass_context
def plugins(ctx, as_json):
    """List loaded plugins, their source and components; broken plugins show their error."""
    records = _session(ctx).plugins()
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    rows = [(r["name"], r["source"], "; ".join(f"{k}s: {', '.join(v)}" for k, v in r["components"].items()),
             f"ERROR {r['error']}" if r["error"] else "ok") for r in records]
    click.echo(Table(["plugin", "source", "components", "status"], rows).render())


@cli.command("list")
@click.argument("kind")
@click.option("--dataset", default=None, help="Models: show D for this dataset's input shape.")
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@click.pass_context
def list_(ctx, kind, dataset, as_json):
    """List components of KIND: models, datasets, methods, metrics, executors."""
    table = _session(ctx).list(kind, dataset=dataset)
    click.echo(table.render("json" if as_json else "table"))


@cli.command()
@click.argument("kind")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@click.pass_context
def show(ctx, kind, name, as_json):
    """Show one component: description, plugin and every parameter with its help."""
    info = _session(ctx).show(kind, name)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['kind']} {info['name']} (plugin {info['plugin']}, {info['source']})")
    click.echo(f"  {info['description']}")
    if info["params"]:
        click.echo("parameters:")
        for p in info["params"]:
            default = "required" if p["required"] else f"default {json.dumps(p['default'])}"
            click.echo(f"  {p['name']}: {p['type']} ({default})")
            if p["description"]:
                click.echo(f"      {p['description']}")


@cli.command()
@click.option("--suite", default=None, help="Only this suite.")
@db_option
@format_option()
@click.option("--references", is_flag=True,
              help="Show measured next to published results (registry/) where model, dataset, method "
                   "and rule match, with the ratio measured / published.")
@click.pass_context
def leaderboard(ctx, suite, db, fmt, references):
    """Threshold training dimension d* per method, ranked within each task and ε."""
    session = _session(ctx, db=db)
    if not references:
        click.echo(session.leaderboard(suite).render(fmt))
        return
    table = session.references(suite)
    click.echo(table.render(fmt))
    if not len(table):
        click.echo("no stored result matches a published reference (model, dataset, method, rule); "
                   "see `dofbench query \"select * from reference_results\"`", err=True)


@cli.command()
@click.argument("sql")
@db_option
@format_option(choices=("table", "csv", "json", "markdown"))
@click.pass_context
def query(ctx, sql, db, fmt):
    """Run read-only SQL on the store: tables trials, evals, suites, suite_trials, predictions,
    reference_results; views success, leaderboard (columns: see the README)."""
    click.echo(_session(ctx, db=db).query(sql).render(fmt))


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
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DofbenchError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
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


from dofbench.plot_cli import plot as _plot_command, report as _report_command  # noqa: E402

cli.add_command(_plot_command)
cli.add_command(_report_command)
cli.add_command(__import__("dofbench.theory_cli", fromlist=["theory"]).theory)

if __name__ == "__main__":  # pragma: no cover
    main()
