"""``dofbench compare``, ``dofbench leaderboard`` and ``dofbench query``: reading the store."""

from __future__ import annotations

import click

from dofbench.cli.common import db_option, format_option, plugin_option, session, table_width, wide_option


@click.command()
@click.option("--suite", default=None, help="Only this suite (default: every suite in the store).")
@db_option
@plugin_option
@format_option()
@wide_option
@click.pass_context
def compare(ctx, suite, db, fmt, wide):
    """Methods × ε: d* of every method with its interval and d*/D, per task, and how many times
    fewer dimensions the best method needs than random subspaces (the yardstick). csv and json
    give the numbers, one row per (task, method, ε)."""
    click.echo(session(ctx, db=db).compare(suite).render(fmt, width=table_width(wide)))


@click.command()
@click.option("--suite", default=None, help="Only this suite.")
@db_option
@plugin_option
@format_option()
@wide_option
@click.option("--references", is_flag=True,
              help="Show measured next to published results (registry/) where model, dataset, method "
                   "and rule match, with the ratio measured / published.")
@click.pass_context
def leaderboard(ctx, suite, db, fmt, wide, references):
    """Threshold training dimension d* per method, ranked within each task and ε (empty columns
    are left out of the table; csv and json keep them). For the methods side by side: compare."""
    s = session(ctx, db=db)
    if not references:
        click.echo(s.leaderboard(suite).render(fmt, width=table_width(wide)))
        return
    table = s.references(suite)
    click.echo(table.render(fmt, width=table_width(wide)))
    if not len(table):
        click.echo("no stored result matches a published reference (model, dataset, method, rule); "
                   "see `dofbench query \"select * from reference_results\"`", err=True)


@click.command()
@click.argument("sql")
@db_option
@plugin_option
@format_option(choices=("table", "csv", "json", "markdown"))
@wide_option
@click.pass_context
def query(ctx, sql, db, fmt, wide):
    """Run one SELECT on the store: tables trials, evals, suites, suite_trials, runs, predictions,
    reference_results; views success, leaderboard (docs/store.md). The statement can read the
    store and nothing else: it cannot write (the store or any file), ATTACH another database,
    install or load extensions, or change settings."""
    click.echo(session(ctx, db=db).query(sql).render(fmt, width=table_width(wide)))


@click.command()
@db_option
@click.pass_context
def migrate(ctx, db):
    """Bring a results store written by an older dofbench to this version's schema (readers such as
    query and leaderboard never change a file; run and migrate do)."""
    s = session(ctx, db=db)
    version = s.store.migrate()
    click.echo(f"{s.store.path}: store schema {version}")
