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
@click.pass_context
def show(ctx, kind, name, as_json):
    """Show one component: description, plugin and every parameter with its help."""
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
