"""Predictions of d*(ε) without training a subspace, for the ``dofbench theory`` commands:

- :func:`quadratic_rows`: a quadratic well given by its spectrum;
- :func:`suite_predictions`: every quadratic-well task of a suite; writes ``predictions`` and shows
  them next to the measured d* where the suite has run;
- :func:`hessian_predictions`: real networks: full training, Lanczos on Hessian–vector products at
  the end, the local-quadratic prediction at loss levels ε; writes ``predictions``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dofbench.errors import DofbenchError
from dofbench.results.table import Table


def _fmt(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), nd)


def quadratic_rows(eigenvalues: np.ndarray, R: float, epsilons: list[float], delta: float, samples: int,
                   seed: int) -> list[dict[str, Any]]:
    """Width, closed forms and predicted d* of a quadratic well for each ε."""
    from dofbench.analysis.theory import predict_d_star, projected_width

    D = len(eigenvalues)
    out = []
    for eps in epsilons:
        pw = projected_width(eigenvalues, eps, R, n=samples, seed=seed)
        p = predict_d_star(D, pw.w2, delta, pw.intrinsic_sd)
        out.append({"epsilon": eps, "D": D, "w2": pw.w2, "w2_se": pw.statistical_dimension.stderr,
                    "small_form": pw.small_form, "saturating_form": pw.saturating_form,
                    "sd_V": pw.intrinsic_sd, "d_star_pred": p.d_star, "lo": p.lo, "hi": p.hi,
                    "rigorous_lo": p.rigorous_lo, "rigorous_hi": p.rigorous_hi, "gordon_lo": p.gordon_lo})
    return out


def _table(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> Table:
    cols = [*extra, "epsilon", "D", "w2", "w2_se", "small_form", "saturating_form", "sd_V", "d_star_pred",
            "lo", "hi", "rigorous_lo", "rigorous_hi", "gordon_lo"]
    return Table(cols, [tuple(_fmt(r[c], 2) if isinstance(r[c], float) and c != "epsilon" else r[c]
                              for c in cols) for r in rows])


def write_predictions(store, rows: list[tuple]) -> None:
    """Replace the predictions of the (suite, model, dataset, method, metric, source) keys given."""
    with store.write() as con:
        con.begin()
        for key in {(r[0], r[1], r[2], r[3], r[4], r[9]) for r in rows}:
            con.execute("DELETE FROM predictions WHERE suite = ? AND model = ? AND dataset = ? AND method = ? "
                        "AND metric = ? AND source = ?", list(key))
        con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [list(r) for r in rows])
        con.commit()


def suite_predictions(session, suite_name: str, samples: int = 400, seed: int = 0,
                      write: bool = True) -> Table:
    """Predict d* for every quadratic-well task of a suite; store and show next to the measured."""
    suite = session.resolve([suite_name])[0]
    th = suite.spec.threshold
    if suite.higher_is_better:
        raise DofbenchError(f"suites.{suite_name}.threshold.metric: the quadratic theory predicts loss "
                            f"thresholds; got {th.metric!r} (use best_train_loss or train_loss)")
    preds, shown = [], []
    for task in suite.tasks:
        if task.dataset.name != "quadratic-well" or task.model.name != "quadratic-point":
            continue
        dcomp = session.host.get("dataset", task.dataset.name)
        lam = dcomp.parse_params(task.dataset.params).eigenvalues().double().numpy()
        R = float(task.model.params["R"])
        for r in quadratic_rows(lam, R, list(th.epsilons), th.delta, samples, seed):
            for ref in suite.spec.methods:
                preds.append((suite_name, task.model.name, task.dataset.name, ref.name, th.metric, r["epsilon"],
                              r["d_star_pred"], r["lo"], r["hi"], "quadratic-theory"))
            shown.append({**r, "model": f"R={R}", "dataset": _well_label(task.dataset.params)})
    if not shown:
        raise DofbenchError(f"suite {suite_name!r} has no quadratic-well task (dataset quadratic-well with "
                            "model quadratic-point); for networks use `dofbench theory hessian`")
    if write:
        write_predictions(session.store, preds)
    measured = _measured(session, suite_name)
    for r in shown:
        r["d_star_measured"] = measured.get((r["dataset"], r["model"], r["epsilon"]))
    cols = ["dataset", "model", "epsilon", "d_star_measured", "d_star_pred", "lo", "hi", "w2", "sd_V",
            "small_form", "saturating_form", "rigorous_lo", "rigorous_hi"]
    return Table(cols, [tuple(_fmt(r[c], 2) if isinstance(r[c], float) and c != "epsilon" else r[c]
                              for c in cols) for r in shown])


def _well_label(p: dict[str, Any]) -> str:
    return f"D={p['dim']} {p['spectrum']}" + (f" k={p['k']}" if p["spectrum"] == "bimodal" else "")


def _measured(session, suite_name: str) -> dict:
    import json

    if not session.store.path.exists():
        return {}
    cols, rows = session.store.query(
        "SELECT model_params, dataset_params, epsilon, d_star, d_star_lo, d_star_hi FROM leaderboard WHERE suite = ?",
        [suite_name])
    out = {}
    for mp, dp, eps, ds, lo, hi in rows:
        key = (_well_label(json.loads(dp)), f"R={float(json.loads(mp)['R'])}", eps)
        out[key] = f"{ds} [{lo}, {hi if hi is not None else '…'}]" if ds is not None else f"> grid [{lo}, …]"
    return out


def hessian_predictions(session, suite_name: str, epsilons: list[float] | None, steps: int, lr: float, k: int,
                        samples: int, seed: int, write: bool = True) -> Table:
    """Train each task of a suite fully (momentum SGD), Lanczos at the end, predict d*(ε)."""
    import torch

    from dofbench.analysis.hessian import local_quadratic, quadratic_d_star
    from dofbench.engine.loop import train_full
    from dofbench.engine.worker import Worker

    suite = session.resolve([suite_name])[0]
    th = suite.spec.threshold
    if epsilons is None:
        if suite.higher_is_better:
            raise DofbenchError(f"--epsilon: suite {suite_name!r} thresholds {th.metric!r} (an accuracy); the "
                                "local-quadratic theory predicts loss levels: give them with --epsilon")
        epsilons = list(th.epsilons)
    worker = Worker(session.runtime, host=session.host)
    rows, preds = [], []
    for task in suite.tasks:
        mine = [t for t in suite.trials if t.model == task.model and t.dataset == task.dataset]
        spec = next((t for t in mine if t.seed == seed), mine[0])
        net, theta0, data = worker.build(spec)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed)
        loss_fn = data.loss or torch.nn.functional.cross_entropy
        theta_T, _ = train_full(net, theta0, data, steps=steps, lr=lr, batch_size=spec.train.batch_size,
                                generator=gen, loss_fn=loss_fn)
        lq = local_quadratic(net, theta0, theta_T, data, loss_fn, k=k, seed=seed)
        for r in quadratic_d_star(lq, epsilons, th.delta, samples, seed):
            rows.append((task.model.name, task.dataset.name, net.D, _fmt(lq.loss, 4), _fmt(lq.R, 3),
                         _fmt(float(lq.lanczos.ritz.max()), 3), r["epsilon"], _fmt(r["w2"]),
                         _fmt(r["d_star"]), _fmt(r["lo"]), _fmt(r["hi"])))
            for ref in suite.spec.methods:
                preds.append((suite_name, task.model.name, task.dataset.name, ref.name,
                              th.metric if not suite.higher_is_better else "train_loss", r["epsilon"],
                              r["d_star"], r["lo"], r["hi"], "hessian-lanczos"))
    if write:
        write_predictions(session.store, preds)
    return Table(["model", "dataset", "D", "loss_T", "R", "lambda_max", "epsilon", "w2", "d_star_pred", "lo", "hi"],
                 rows)
