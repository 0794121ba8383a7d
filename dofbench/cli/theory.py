"""``dofbench theory …``: predictions of d*(ε) without training a subspace (:mod:`dofbench.run.predictions`)."""

from __future__ import annotations

import click

from dofbench.cli.common import plugin_option, session
from dofbench.run.predictions import quadratic_table, hessian_predictions, quadratic_rows, suite_predictions


@click.group()
def theory() -> None:
    """Predict d*(ε) from the geometry (Gordon's escape theorem; docs/methods.md, Theory), without training."""


@theory.command()
@click.option("--dim", "D", type=click.IntRange(2, 100_000), default=1000, show_default=True, help="D.")
@click.option("--spectrum", type=click.Choice(["bimodal", "power-law", "flat"]), default="bimodal", show_default=True)
@click.option("--k", type=click.IntRange(min=0), default=50, show_default=True, help="Bimodal: count of lambda_k.")
@click.option("--lambda-k", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--lambda-rest", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True)
@click.option("--lambda-max", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--R", "R", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Distance of θ0 from the minimum.")
@click.option("--epsilon", "epsilons", type=click.FloatRange(min=0, min_open=True), multiple=True, required=True,
              help="Loss level ε (repeatable).")
@click.option("--delta", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True)
@click.option("--samples", type=click.IntRange(min=10), default=400, show_default=True, help="Monte Carlo samples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table")
def quadratic(D, spectrum, k, lambda_k, lambda_rest, lambda_max, alpha, R, epsilons, delta, samples, seed, fmt):
    """Width of the projected sub-level set and d*(ε) of a quadratic well ½ θᵀHθ seen from distance R."""
    from dofbench.analysis.theory import spectrum as make  # the CLI's own quadratic well, no plugin

    lam = make(spectrum, D, k=k, lambda_k=lambda_k, lambda_rest=lambda_rest, lambda_max=lambda_max, alpha=alpha)
    click.echo(quadratic_table(quadratic_rows(lam, R, list(epsilons), delta, samples, seed)).render(fmt))


@theory.command()
@click.argument("suite_name", metavar="SUITE")
@plugin_option
@click.option("--config", type=click.Path(), default=None, help="Suites file.")
@click.option("--db", type=click.Path(), default=None, help="Results store.")
@click.option("--samples", type=click.IntRange(min=10), default=400, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-write", is_flag=True, help="Do not store the predictions.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table")
@click.pass_context
def suite(ctx, suite_name, config, db, samples, seed, no_write, fmt):
    """Predicted d* for the tasks of SUITE whose loss is an exact quadratic well (e.g. quadratic-well with
    quadratic-point), next to the measured d* [interval]."""
    s = session(ctx, db=db, config=config)
    table = suite_predictions(s.host, s.store, s.resolve([suite_name])[0], samples, seed, write=not no_write)
    click.echo(table.render(fmt))


@theory.command()
@click.argument("suite_name", metavar="SUITE")
@plugin_option
@click.option("--config", type=click.Path(), default=None, help="Suites file.")
@click.option("--db", type=click.Path(), default=None, help="Results store.")
@click.option("--epsilon", "epsilons", type=click.FloatRange(min=0, min_open=True), multiple=True,
              help="Training-loss levels ε (default: the suite's, when it thresholds a loss).")
@click.option("--steps", type=click.IntRange(min=1), default=500, show_default=True, help="Full-training steps.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Learning rate of full training (momentum 0.9).")
@click.option("--lanczos", "k", type=click.IntRange(min=2), default=64, show_default=True, help="Lanczos steps.")
@click.option("--probes", type=click.IntRange(min=1), default=4, show_default=True,
              help="Random probe vectors of the stochastic Lanczos quadrature (the spectral density).")
@click.option("--samples", type=click.IntRange(min=10), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--no-write", is_flag=True, help="Do not store the predictions.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table")
@click.pass_context
def hessian(ctx, suite_name, config, db, epsilons, steps, lr, k, probes, samples, seed, device, no_write, fmt):
    """Local-quadratic prediction of d*(ε) for real networks from the Hessian (Lanczos), only where the
    local model holds: θ_T near a minimum (negative-curvature mass, the Newton step) and the model
    checked against the actual loss (trust radius); 'not applicable' with the reason otherwise."""
    s = session(ctx, db=db, config=config, device=device)
    table = hessian_predictions(s.host, s.store, s.runtime, s.resolve([suite_name])[0], list(epsilons) or None,
                                steps, lr, k, samples, seed, write=not no_write, probes=probes)
    click.echo(table.render(fmt))


@theory.command()
@click.argument("suite_name", metavar="SUITE")
@click.option("--db", type=click.Path(dir_okay=False), default=None, help="Results store.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table")
@click.pass_context
def compare(ctx, suite_name, db, fmt):
    """The local angular dimension w² measured from the seeds' first-success dimensions (nested
    subspaces; Crofton: w² = D + ½ − mean d_s) next to the theory's (`theory suite` or `theory hessian`)."""
    from dofbench.results import queries

    s = session(ctx, db=db)
    click.echo(queries.angular_comparison(s.store, suite_name).render(fmt))
