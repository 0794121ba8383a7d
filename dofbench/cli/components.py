"""``dofbench plugins``, ``dofbench list`` and ``dofbench show``: what the plugin host provides."""

from __future__ import annotations

import json

import click

from dofbench.cli.common import db_option, plugin_option, session, table_width, wide_option
from dofbench.results.table import Table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@plugin_option
@wide_option
@click.pass_context
def plugins(ctx, as_json, wide):
    """List loaded plugins, their source and components; broken plugins show their error."""
    records = session(ctx).plugins()
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    rows = [(r["name"], r["source"], "; ".join(f"{k}s: {', '.join(v)}" for k, v in r["components"].items()),
             f"ERROR {r['error']}" if r["error"] else "ok") for r in records]
    click.echo(Table(["plugin", "source", "components", "status"], rows).render(width=table_width(wide)))


@click.command("list")
@click.argument("kind")
@click.option("--dataset", default=None, help="Models: show D for this dataset's input shape.")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="Suites: the suites file (default: the packaged benchmarks.toml).")
@db_option
@plugin_option
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@wide_option
@click.pass_context
def list_(ctx, kind, dataset, config, db, as_json, wide):
    """List KIND: suites (with descriptions, trial counts and the trials the store holds), or the
    components: models, datasets, methods, metrics, executors."""
    if kind in ("suite", "suites"):
        table = session(ctx, db=db, config=config).suites()
    else:
        table = session(ctx).list(kind, dataset=dataset)
    click.echo(table.render("json" if as_json else "table", width=table_width(wide)))


@click.command()
@click.argument("kind")
@click.argument("name")
@plugin_option
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@db_option
@click.pass_context
def show(ctx, kind, name, as_json, db):
    """Show one component (KIND model, dataset, method, metric, executor): description, plugin and
    every parameter with its help; or one stored trial (KIND trial, NAME its id or the start of
    it): spec, status, error and its traceback, metrics."""
    if kind == "trial":
        trial = session(ctx, db=db).trial(name)
        if as_json:
            click.echo(json.dumps(trial, indent=2, default=str))
            return
        click.echo(f"trial {trial['trial_id']}: {trial['status']} (suite {trial['suite']}, {trial['device']}, "
                   f"{trial['wall_s'] or 0:.1f}s)")
        click.echo("spec: " + json.dumps(trial["spec"], indent=2))
        if trial.get("error"):
            click.echo(f"error: {trial['error']}")
        if trial.get("traceback"):
            click.echo(trial["traceback"].rstrip())
        if trial.get("metrics"):
            click.echo("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in sorted(trial["metrics"].items())))
        click.echo(f"versions: {json.dumps(trial['versions'])}")
        return
    info = session(ctx).show(kind, name)
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
