"""The read queries over the store that dofbench itself runs: for the Python session and the CLI
(leaderboard, success), the plots, the report, the comparison with published references and the
theory commands. Each takes an open (read-only) connection, or a :class:`~dofbench.results.store.Store`
where it says so, and returns plain rows; what is drawn or compared from them is decided by the
caller."""

from __future__ import annotations

from typing import Any

from dofbench.results.table import Table

LEADERBOARD_COLUMNS = ("suite, model_label AS model, dataset_label AS dataset, label AS method, metric, epsilon, "
                       "delta, d_star, d_star_lo, d_star_hi, d_int90, total_params, d_star_fraction, n_seeds, complete, rank")
REFERENCE_COLUMNS = ("source", "id", "position", "citation", "url", "location", "paper_model", "model",
                     "model_params", "dataset", "dataset_params", "dataset_variant", "D", "method", "rule",
                     "rule_label", "metric", "fraction", "baseline", "epsilon", "delta", "value", "bound",
                     "verified", "note")


def rows(con, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts by column name."""
    cur = con.execute(sql, params or [])
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _where_suite(suite: str | None, alias: str = "", word: str = "WHERE") -> tuple[str, list]:
    return (f" {word} {alias}suite = ?", [suite]) if suite else ("", [])


# ------------------------------------------------------------------------------ session and CLI
def leaderboard(store, suite: str | None = None) -> Table:
    """The leaderboard as users see it: one row per (suite, task, method, metric, ε), ranked."""
    where, params = _where_suite(suite)
    return Table(*store.query(
        f"SELECT {LEADERBOARD_COLUMNS} FROM leaderboard{where} "
        "ORDER BY suite, model_label, dataset_label, metric, epsilon, rank, label", params))


def angular_comparison(store, suite: str | None = None) -> Table:
    """The empirical angular dimension next to the theory's (view angular_dimension_vs_theory)."""
    where, params = _where_suite(suite)
    return Table(*store.query(
        "SELECT suite, model, model_params, dataset, label AS method, metric, epsilon, D, seeds, exact, censored, "
        "non_monotone, "
        "round(w2, 1) AS w2, round(w2_lo, 1) AS w2_lo, round(w2_hi, 1) AS w2_hi, source, theory_status, "
        "round(w2_theory, 1) AS w2_theory, round(w2_theory_lo, 1) AS w2_theory_lo, "
        "round(w2_theory_hi, 1) AS w2_theory_hi, w2 BETWEEN w2_theory_lo AND w2_theory_hi AS within, theory_reason "
        f"FROM angular_dimension_vs_theory{where} ORDER BY suite, model, model_params, dataset, dataset_params, "
        "label, epsilon, source", params))


def success(store, suite: str | None = None) -> Table:
    """P_s per (suite, task, method, d, metric, ε)."""
    where, params = _where_suite(suite)
    return Table(*store.query(
        f"SELECT suite, model_label AS model, dataset_label AS dataset, label AS method, d, metric, epsilon, n, "
        f"successes, p_success FROM success{where} ORDER BY suite, model_label, dataset_label, label, metric, epsilon, d",
        params))


def comparison_rows(store, suite: str | None = None) -> list[dict[str, Any]]:
    """The leaderboard's rows for the methods × ε comparison (``dofbench compare``): every
    (suite, task, method, ε) with d*, its interval, d*/D, the largest d run, whether the method is
    the suite's yardstick, and how the suite's metric succeeds (higher or lower is better)."""
    where, params = _where_suite(suite, "l.")
    cols, found = store.query(
        "SELECT l.suite, l.model, l.model_params, l.dataset, l.dataset_params, l.model_label, l.dataset_label, "
        "l.method, l.params, l.label, l.metric, l.epsilon, l.delta, l.d_star, l.d_star_lo, l.d_star_hi, "
        "l.total_params, l.d_star_fraction, l.min_d, l.max_d, l.n_seeds, l.complete, l.rank, l.yardstick, "
        "coalesce(th.higher_is_better, true) AS higher_is_better "
        "FROM leaderboard l LEFT JOIN (SELECT suite, metric, any_value(higher_is_better) AS higher_is_better "
        "FROM suite_thresholds GROUP BY suite, metric) th ON th.suite = l.suite AND th.metric = l.metric"
        f"{where} ORDER BY l.suite, l.model_label, l.model_params, l.dataset_label, l.dataset_params, l.metric, "
        "l.label, l.epsilon", params)
    return [dict(zip(cols, r)) for r in found]


def stored_suite_list(store) -> list[str]:
    """Suites with trials in the store (through a Store)."""
    return [r[0] for r in store.query("SELECT DISTINCT suite FROM suite_trials ORDER BY suite")[1]]


def suite_trial_counts(store) -> dict[str, tuple[int, int]]:
    """Per suite in the store: (trials in its membership, those stored with status ok/diverged)."""
    _, found = store.query(
        "SELECT st.suite, count(*), count(t.trial_id) FILTER (WHERE t.status IN ('ok', 'diverged')) "
        "FROM suite_trials st LEFT JOIN trials t USING (trial_id) GROUP BY st.suite")
    return {r[0]: (int(r[1]), int(r[2])) for r in found}


def runs(con, suite: str) -> list[dict[str, Any]]:
    """The recorded runs of a suite (table ``runs``), oldest first."""
    return rows(con, "SELECT started_at, wall_s, executor, workers, trials, skipped, ok, diverged, failed, "
                     "compute_s, stopped FROM runs WHERE suite = ? ORDER BY started_at", [suite])


def trials_by_prefix(con, prefix: str, limit: int = 5) -> list[dict[str, Any]]:
    """Stored trials whose id starts with ``prefix`` (at most ``limit``)."""
    return rows(con, "SELECT * FROM trials WHERE starts_with(trial_id, ?) ORDER BY trial_id LIMIT ?", [prefix, limit])


# ------------------------------------------------------------------------------ suites
def stored_suites(con) -> list[str]:
    """Suites with trials in the store."""
    return [r[0] for r in con.execute("SELECT DISTINCT suite FROM suite_trials ORDER BY suite").fetchall()]


def defined_suites(con) -> list[str]:
    """Suites whose definition the store holds."""
    return [r[0] for r in con.execute("SELECT suite FROM suites ORDER BY suite").fetchall()]


def suite_definition(con, suite: str) -> dict[str, Any] | None:
    """description, spec (JSON), source and updated_at of a suite, or None."""
    found = rows(con, "SELECT description, spec, source, updated_at FROM suites WHERE suite = ?", [suite])
    return found[0] if found else None


def suite_thresholds(con, suite: str) -> list[dict[str, Any]]:
    """The suite's (metric, ε, δ) rows, by ε."""
    return rows(con, "SELECT metric, epsilon, delta, higher_is_better FROM suite_thresholds WHERE suite = ? "
                     "ORDER BY epsilon", [suite])


def suite_metric(con, suite: str) -> str | None:
    """The metric that defines success in ``suite``."""
    row = con.execute("SELECT any_value(metric) FROM suite_thresholds WHERE suite = ?", [suite]).fetchone()
    return row[0] if row else None


def status_counts(con, suite: str) -> list[tuple]:
    """(status, trials, summed wall_s) of a suite's trials."""
    return con.execute(
        "SELECT t.status, count(*), round(sum(t.wall_s), 1) FROM suite_trials st JOIN trials t USING (trial_id) "
        "WHERE st.suite = ? GROUP BY t.status ORDER BY t.status", [suite]).fetchall()


def environments(con, suite: str) -> list[tuple]:
    """(versions JSON, device, trials) that produced a suite's trials, most trials first."""
    return con.execute(
        "SELECT t.versions, t.device, count(*) FROM suite_trials st JOIN trials t USING (trial_id) "
        "WHERE st.suite = ? GROUP BY t.versions, t.device ORDER BY count(*) DESC", [suite]).fetchall()


# ------------------------------------------------------------------------------ plots
_GROUP = "model, model_params, dataset, dataset_params, method, params"


def success_rows(con, suite: str) -> list[dict[str, Any]]:
    """P_s per (task, method, metric, ε, d) of a suite, by ε and d."""
    return rows(con, f"SELECT {_GROUP}, label, model_label, dataset_label, total_params, metric, epsilon, d, p_success "
                     "FROM success WHERE suite = ? ORDER BY epsilon, d", [suite])


def d_star_rows(con, suite: str, method: str | None = None) -> list[dict[str, Any]]:
    """d* per (task, method, metric, ε) of a suite (optionally of one method), by label and ε."""
    extra, params = (" AND method = ?", [method]) if method else ("", [])
    return rows(con, f"SELECT {_GROUP}, label, model_label, dataset_label, metric, epsilon, d_star, max_d, total_params "
                     f"FROM leaderboard WHERE suite = ?{extra} ORDER BY label, epsilon", [suite, *params])


def prediction_rows(con, suite: str) -> list[dict[str, Any]]:
    """Theory's predicted d* of a suite (table ``predictions``)."""
    return rows(con, "SELECT * FROM predictions WHERE suite = ?", [suite])


def metric_by_d(con, suite: str, metric: str) -> list[dict[str, Any]]:
    """Mean, standard deviation and count over seeds of ``metric`` per (task, method label, d),
    from the suite's 'ok' trials."""
    return rows(con, """
        SELECT t.model, t.model_params, t.dataset, t.dataset_params, t.label, t.d,
               any_value(coalesce(t.model_label, t.model)) AS model_label,
               any_value(coalesce(t.dataset_label, t.dataset)) AS dataset_label,
               any_value(t.total_params) AS total_params,
               avg(v) AS mean, stddev_samp(v) AS std, count(v) AS n
        FROM (SELECT *, TRY_CAST(json_extract_string(metrics, '$."' || ? || '"') AS DOUBLE) AS v FROM trials) t
        JOIN suite_trials st ON st.trial_id = t.trial_id
        WHERE st.suite = ? AND t.status = 'ok' AND v IS NOT NULL
        GROUP BY t.model, t.model_params, t.dataset, t.dataset_params, t.label, t.d
        ORDER BY t.label, t.d""", [metric, suite])


def curve_rows(con, suite: str, split: str, metric: str) -> list[dict[str, Any]]:
    """The mean over seeds of an evaluated ``split``/``metric`` per (task, method, d, step)."""
    return rows(con, """
        SELECT t.model, t.model_params, t.dataset, t.dataset_params, t.method, t.params, any_value(t.label) AS label,
               any_value(coalesce(t.model_label, t.model)) AS model_label,
               any_value(coalesce(t.dataset_label, t.dataset)) AS dataset_label,
               any_value(t.total_params) AS total_params, t.d, e.step, avg(e.value) AS mean, count(e.value) AS n
        FROM evals e JOIN trials t ON t.trial_id = e.trial_id JOIN suite_trials st ON st.trial_id = t.trial_id
        WHERE st.suite = ? AND e.split = ? AND e.metric = ? AND t.status IN ('ok', 'diverged')
        GROUP BY t.model, t.model_params, t.dataset, t.dataset_params, t.method, t.params, t.d, e.step
        ORDER BY t.d, e.step""", [suite, split, metric])


_KEY = ("model", "model_params", "dataset", "dataset_params", "method", "params", "metric", "epsilon")


def interval_inputs(con, suite: str) -> list[dict[str, Any]]:
    """What d*'s interval of each (task, method, metric, ε) of a suite is computed from
    (:func:`dofbench.results.intervals.refresh`): the leaderboard's ``evidence``, δ, the confidence
    level, whether the subspaces are nested, the ``success`` cells (d, successes, n, eligible) and
    the ``first_success`` rows of its seeds."""
    keys = ", ".join(_KEY)
    groups = rows(con, f"SELECT {keys}, label, total_params, delta, evidence FROM leaderboard WHERE suite = ? "
                       f"ORDER BY {keys}", [suite])
    seed_evidence = {tuple(r[k] for k in _KEY): r["evidence"] for r in rows(
        con, f"SELECT {keys}, evidence FROM first_success_evidence WHERE suite = ?", [suite])}
    cells = rows(con, f"SELECT {keys}, d, successes, n, eligible, confidence, nested FROM success WHERE suite = ? "
                      "ORDER BY d", [suite])
    seeds = rows(con, f"SELECT {keys}, seed, d_below, d_first, exact, monotone FROM first_success WHERE suite = ?",
                 [suite])
    by_key: dict[tuple, dict[str, Any]] = {}
    for g in groups:
        key = tuple(g[k] for k in _KEY)
        by_key[key] = {"key": key, "label": g["label"], "D": g["total_params"], "delta": g["delta"],
                       "evidence": g["evidence"], "seed_evidence": seed_evidence.get(key), "cells": [], "seeds": [],
                       "nested": False, "confidence": 0.95}
    for c in cells:
        g = by_key.get(tuple(c[k] for k in _KEY))
        if g is not None:
            g["cells"].append(c)
            g["nested"] = g["nested"] or bool(c["nested"])
            g["confidence"] = c["confidence"]
    for r in seeds:
        g = by_key.get(tuple(r[k] for k in _KEY))
        if g is not None:
            g["seeds"].append(r)
    return list(by_key.values())


def measured_d_star(con, suite: str) -> list[dict[str, Any]]:
    """d* with its interval per (model params, dataset params, ε) of a suite."""
    return rows(con, "SELECT model_params, dataset_params, epsilon, d_star, d_star_lo, d_star_hi FROM leaderboard "
                     "WHERE suite = ?", [suite])


# ------------------------------------------------------------------------------ references
def reference_rows(con, columns: tuple[str, ...] = REFERENCE_COLUMNS) -> list[dict[str, Any]]:
    """The loaded published references, in registry order."""
    return rows(con, f"SELECT {', '.join(columns)} FROM reference_results ORDER BY source, position")


def d_star_at(con, model: str, dataset: str, method: str, metric: str, epsilon: float, delta: float,
              suite: str | None = None) -> list[dict[str, Any]]:
    """Leaderboard rows of a (model, dataset, method) at one (metric, ε, δ)."""
    where, params = _where_suite(suite, word="AND")
    return rows(con,
                "SELECT suite, label, model_params, dataset_params, d_star, total_params, n_seeds, max_d FROM leaderboard "
                "WHERE model = ? AND dataset = ? AND method = ? AND metric = ? AND abs(epsilon - ?) < 1e-9 "
                f"AND abs(delta - ?) < 1e-9{where}", [model, dataset, method, metric, epsilon, delta, *params])


_VALUE = "TRY_CAST(json_extract_string(t.metrics, '$.\"' || ? || '\"') AS DOUBLE)"


def mean_metric_by_d(con, model: str, dataset: str, method: str, metric: str,
                     suite: str | None = None) -> list[dict[str, Any]]:
    """Mean (and count) over the 'ok' trials of ``metric`` per (suite, model params, dataset params,
    method params, d) of a (model, dataset, method)."""
    where, params = _where_suite(suite, "st.", word="AND")
    return rows(con,
                f"SELECT st.suite, any_value(t.label) AS label, t.model_params, t.dataset_params, t.params, t.d, "
                f"avg({_VALUE}) AS mean, count({_VALUE}) AS n, any_value(t.total_params) AS total_params "
                "FROM suite_trials st JOIN trials t USING (trial_id) "
                f"WHERE t.status = 'ok' AND t.model = ? AND t.dataset = ? AND t.method = ?{where} "
                "GROUP BY st.suite, t.model_params, t.dataset_params, t.params, t.d",
                [metric, metric, model, dataset, method, *params])


def baseline_means(con, model: str, dataset: str, metric: str) -> list[dict[str, Any]]:
    """Mean ``metric`` of the full-training baselines (trials a suite marks ``baseline``) of a
    (model, dataset), per (model params, dataset params)."""
    return rows(con,
                f"SELECT t.model_params, t.dataset_params, avg({_VALUE}) AS mean FROM trials t "
                "WHERE t.status = 'ok' AND t.model = ? AND t.dataset = ? AND t.trial_id IN "
                "(SELECT trial_id FROM suite_trials WHERE baseline) "
                "GROUP BY t.model_params, t.dataset_params", [metric, model, dataset])
