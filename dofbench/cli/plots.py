"""``dofbench plot`` and ``dofbench report``: figures and a shareable report, drawn from the store."""

from __future__ import annotations

import click

from dofbench.cli.common import db_option, plugin_option, session
from dofbench.report.plots import FORMATS, PLOT_KINDS


@click.command("plot")
@click.argument("kind", type=click.Choice([*PLOT_KINDS, "all"]))
@click.option("--suite", default=None, help="Only this suite (default: every suite in the store).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="plots", show_default=True,
              help="Directory the figures are written to (SUITE-KIND.png and .svg).")
@click.option("--format", "formats", type=click.Choice(FORMATS), multiple=True,
              help="Image format; repeatable (default: png and svg).")
@db_option
@plugin_option
@click.pass_context
def plot(ctx, kind, suite, out_dir, formats, db):
    """Draw KIND from stored results: phase (P_s over d and ε, d* and predicted curves), ps (P_s vs d,
    every method on one axis, per ε), accuracy (the suite's metric vs d, every method, D marked),
    dstar (d* vs ε), sweep (d* vs a method parameter the suite varies), curves (training curves of
    the suite's metric, train and test), or all."""
    kinds = list(PLOT_KINDS) if kind == "all" else [kind]
    drawn = session(ctx, db=db).plot(kinds, suite=suite, out_dir=out_dir, formats=tuple(formats) or FORMATS,
                                   skip_empty=kind == "all")
    for p in drawn:
        for path in p.paths:
            click.echo(str(path))
    if not drawn:
        click.echo("nothing to plot", err=True)


@click.command("report")
@click.argument("suite")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for report.html (self-contained), report.md and the figures.")
@db_option
@plugin_option
@click.pass_context
def report(ctx, suite, out_dir, db):
    """Write one shareable page for SUITE: the methods × ε comparison first, then settings, runs
    (wall time next to summed compute), leaderboard, published references, every plot and the
    environment. Prints the HTML file's path."""
    paths = session(ctx, db=db).report(suite, out_dir)
    click.echo(str(paths["html"]))
