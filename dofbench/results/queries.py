"""Read queries over the store, shared by the Python session, the CLI and the report."""

from __future__ import annotations

from dofbench.results.table import Table

LEADERBOARD_COLUMNS = ("suite, model, dataset, label AS method, metric, epsilon, delta, d_star, "
                       "d_star_lo, d_star_hi, d_int90, total_params, d_star_fraction, n_seeds, rank")


def _where_suite(suite: str | None) -> tuple[str, list]:
    return ("WHERE suite = ?", [suite]) if suite else ("", [])


def leaderboard(store, suite: str | None = None) -> Table:
    """The leaderboard as users see it: one row per (suite, task, method, metric, ε), ranked."""
    where, params = _where_suite(suite)
    return Table(*store.query(
        f"SELECT {LEADERBOARD_COLUMNS} FROM leaderboard {where} "
        "ORDER BY suite, model, dataset, metric, epsilon, rank, label", params))


def success(store, suite: str | None = None) -> Table:
    """P_s per (suite, task, method, d, metric, ε)."""
    where, params = _where_suite(suite)
    return Table(*store.query(
        f"SELECT suite, model, dataset, label AS method, d, metric, epsilon, n, successes, p_success "
        f"FROM success {where} ORDER BY suite, model, dataset, label, metric, epsilon, d", params))
