"""``dofbench run`` and ``dofbench validate``."""

from __future__ import annotations

import sys

import click

from dofbench.cli.common import db_option, format_option, plugin_option, session, table_width, wide_option
from dofbench.errors import DofbenchError


@click.command()
@click.argument("suites", nargs=-1)
@click.option("--config", type=click.Path(), default=None,
              help="Suites file (default: the packaged benchmarks.toml).")
@db_option
@plugin_option
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
@click.option("--no-progress", is_flag=True, help="Hide the progress bar (trials done, elapsed, ETA).")
@format_option()
@wide_option
@click.pass_context
def run(ctx, suites, config, db, force, retry_failed, dry_run, device, executor, workers, scheduler,
        max_trials, time_budget, data_root, download, no_progress, fmt, wide):
    """Run SUITES (names in the suites file; without one, list them); print the leaderboard at the end.

    Trials already stored are skipped, so an interrupted run (Ctrl-C, SIGTERM, a killed machine)
    is finished by running the same command again. Exit codes: 0 every trial ran (a diverged
    trial is a result: an unsuccessful seed), 1 bad input (nothing stored), 3 some trials failed
    (an error: the summary lists each distinct one; `dofbench show trial ID` prints its traceback;
    `--retry-failed` reruns them), 4 the executor could not go on (a Dask cluster with no workers
    left: what finished is stored), 130 / 143 interrupted by SIGINT / SIGTERM."""
    s = session(ctx, db=db, config=config, device=device, data_root=data_root, download=download)
    width = table_width(wide)
    if not suites:
        click.echo(s.suites().render(width=width))
        click.echo(f"name one or more suites: dofbench run SUITE… (these are the suites of "
                   f"{config or 'the packaged benchmarks.toml'}; --config FILE for your own; "
                   f"`dofbench list suites` lists them)", err=True)
        sys.exit(2)
    if dry_run:
        click.echo(s.plan(suites, force=force).render(fmt, width=width))
        return
    summaries = s.run(suites, force=force, retry_failed=retry_failed, executor=executor, workers=workers,
                      scheduler=scheduler, max_trials=max_trials, time_budget=parse_duration(time_budget),
                      progress=not no_progress and sys.stderr.isatty())
    for summary in summaries:
        click.echo(summary.line(), err=True)
        for line in summary.failure_lines():
            click.echo(f"  {line}", err=True)
    names = [x.suite for x in summaries]
    for name in names:
        click.echo(s.leaderboard(name).render(fmt, width=width))
    stopped = [x for x in summaries if x.interrupted]
    if stopped:
        sys.exit(143 if stopped[0].signal == "SIGTERM" else 130)
    if any(x.lost_executor for x in summaries):
        sys.exit(EXIT_EXECUTOR_LOST)
    if any(x.failed for x in summaries):
        sys.exit(EXIT_FAILED_TRIALS)


EXIT_FAILED_TRIALS = 3
EXIT_EXECUTOR_LOST = 4


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


@click.command()
@click.argument("file", required=False, type=click.Path())
@plugin_option
@wide_option
@click.pass_context
def validate(ctx, file, wide):
    """Validate a suites FILE (default: the packaged benchmarks.toml) without running it."""
    table, problems = session(ctx).validate(file)
    if len(table):
        click.echo(table.render(width=table_width(wide)))
    click.echo(f"{len(table)} suites valid" + (f", {len(problems)} problems:" if problems else ""), err=True)
    if problems:
        raise DofbenchError("\n".join(problems))
