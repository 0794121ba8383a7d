"""Predictions of d*(ε) without training a subspace, for the ``dofbench theory`` commands:

- :func:`quadratic_rows`: a quadratic well given by its spectrum;
- :func:`suite_predictions`: every task of a suite whose loss is an exact quadratic well (its
  dataset declares the spectrum, its model the distance of θ0); writes ``predictions`` and shows
  them next to the measured d* where the suite has run;
- :func:`hessian_predictions`: real networks: full training, the local quadratic model at the end
  (Lanczos on Hessian–vector products), the gated prediction at loss levels ε — 'not applicable'
  with its reason where the model does not hold; writes ``predictions``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import torch

from dofbench.analysis.hessian import local_quadratic, quadratic_d_star
from dofbench.analysis.theory import predict_d_star, projected_width
from dofbench.config.identity import canonical_json
from dofbench.engine.loop import train_full
from dofbench.engine.worker import Worker
from dofbench.errors import DofbenchError
from dofbench.results import queries
from dofbench.results.table import Table
from dofbench.run.resolve import ResolvedSuite


def _fmt(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), nd)


def quadratic_rows(eigenvalues: np.ndarray, R: float, epsilons: list[float], delta: float, samples: int,
                   seed: int) -> list[dict[str, Any]]:
    """Width, the small-ellipsoid form where it holds (every r_i ≤ R/10; else None) and predicted d*
    of a quadratic well for each ε; ``sd_V``: the spread of the first-success dimension across seeds."""
    D = len(eigenvalues)
    out = []
    for eps in epsilons:
        pw = projected_width(eigenvalues, eps, R, n=samples, seed=seed)
        p = predict_d_star(D, pw.w2, delta, pw.intrinsic_sd)
        out.append({"epsilon": eps, "D": D, "w2": pw.w2, "w2_se": pw.statistical_dimension.stderr,
                    "small_form": pw.small_form, "sd_V": pw.intrinsic_sd, "d_star_pred": p.d_star, "lo": p.lo,
                    "hi": p.hi, "rigorous_lo": p.rigorous_lo, "rigorous_hi": p.rigorous_hi, "gordon_lo": p.gordon_lo})
    return out


def quadratic_table(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> Table:
    """The rows of :func:`quadratic_rows` as a table (floats rounded)."""
    cols = [*extra, "epsilon", "D", "w2", "w2_se", "small_form", "sd_V", "d_star_pred",
            "lo", "hi", "rigorous_lo", "rigorous_hi", "gordon_lo"]
    return Table(cols, [tuple(_fmt(r[c], 2) if isinstance(r[c], float) and c != "epsilon" else r[c]
                              for c in cols) for r in rows])


def _label(name: str, identity: dict[str, Any]) -> str:
    """A component with the parameters that differ from their defaults: 'name' or 'name[k=v,…]'."""
    if not identity:
        return name
    return name + "[" + ",".join(f"{k}={canonical_json(v)}" for k, v in sorted(identity.items())) + "]"


def suite_predictions(host, store, suite: ResolvedSuite, samples: int = 400, seed: int = 0,
                      write: bool = True) -> Table:
    """Predict d* for every task of a suite whose loss is an exact quadratic well (the dataset
    declares its spectrum, the model the distance R of θ0 from the minimum); store the
    predictions and show them next to the measured d* [interval]."""
    th = suite.spec.threshold
    if suite.higher_is_better:
        raise DofbenchError(f"suites.{suite.name}.threshold.metric: the quadratic theory predicts loss "
                            f"thresholds; got {th.metric!r} (use best_train_loss or train_loss)")
    preds, shown = [], []
    for task in suite.tasks:
        dcomp, mcomp = host.get("dataset", task.dataset.name), host.get("model", task.model.name)
        lam = dcomp.quadratic_spectrum(dcomp.parse_params(task.dataset.params))
        R = mcomp.initial_distance(mcomp.parse_params(task.model.params))
        if lam is None or R is None:
            continue
        z = 1.959963984540054
        for r in quadratic_rows(np.asarray(lam, dtype=np.float64), float(R), list(th.epsilons), th.delta,
                                samples, seed):
            for ref, params in _methods(host, suite):
                preds.append({"suite": suite.name, "model": task.model.name, "dataset": task.dataset.name,
                              "method": ref.name, "metric": th.metric, "epsilon": r["epsilon"],
                              "d_star_pred": r["d_star_pred"], "d_star_pred_lo": r["lo"], "d_star_pred_hi": r["hi"],
                              "source": "quadratic-theory", "model_params": canonical_json(task.model.params),
                              "dataset_params": canonical_json(task.dataset.params), "params": params,
                              "w2": r["w2"], "w2_lo": r["w2"] - z * r["w2_se"], "w2_hi": r["w2"] + z * r["w2_se"],
                              "w2_sd": r["sd_V"], "status": "ok"})
            shown.append({**r, "model": _label(task.model.name, task.model_identity),
                          "dataset": _label(task.dataset.name, task.dataset_identity),
                          "key": (canonical_json(task.model.params), canonical_json(task.dataset.params))})
    if not shown:
        raise DofbenchError(f"suite {suite.name!r} has no task whose loss is an exact quadratic well (a dataset "
                            "that declares its spectrum, e.g. quadratic-well, with a model that declares its "
                            "initial distance, e.g. quadratic-point); for networks use `dofbench theory hessian`")
    if write:
        store.write_predictions(preds)
    measured = _measured(store, suite.name)
    for r in shown:
        r["d_star_measured"] = measured.get((*r["key"], r["epsilon"]))
    cols = ["dataset", "model", "epsilon", "d_star_measured", "d_star_pred", "lo", "hi", "w2", "sd_V",
            "small_form", "rigorous_lo", "rigorous_hi"]
    return Table(cols, [tuple(_fmt(r[c], 2) if isinstance(r[c], float) and c != "epsilon" else r[c]
                              for c in cols) for r in shown])


def _methods(host, suite: ResolvedSuite) -> list[tuple[Any, str]]:
    """(reference, resolved params JSON) of each method of a suite."""
    out = []
    for ref in suite.spec.methods:
        comp = host.get("method", ref.name)
        out.append((ref, canonical_json(comp.parse_params(ref.params).model_dump(mode="json"))))
    return out


def _measured(store, suite_name: str) -> dict:
    """(model params, dataset params, ε) → 'd* [lo, hi]' where the suite has run."""
    if not store.path.exists():
        return {}
    with store.read() as con:
        found = queries.measured_d_star(con, suite_name)
    out = {}
    for r in found:
        ds, lo, hi = r["d_star"], r["d_star_lo"], r["d_star_hi"]
        out[(r["model_params"], r["dataset_params"], r["epsilon"])] = (
            f"{ds} [{lo}, {hi if hi is not None else '…'}]" if ds is not None else f"> grid [{lo}, …]")
    return out


def hessian_predictions(host, store, runtime, suite: ResolvedSuite, epsilons: list[float] | None, steps: int,
                        lr: float, k: int, samples: int, seed: int, write: bool = True, probes: int = 4) -> Table:
    """Train each task of a suite fully (momentum SGD), measure the local quadratic model at the end
    (gradient, several Lanczos probes, the model against the actual loss) and predict d*(ε) at the
    training-loss levels ``epsilons`` (default: the suite's, when it thresholds a loss) where the
    model holds; 'not applicable' with the reason elsewhere (:mod:`dofbench.analysis.hessian`)."""
    th = suite.spec.threshold
    if epsilons is None:
        if suite.higher_is_better:
            raise DofbenchError(f"--epsilon: suite {suite.name!r} thresholds {th.metric!r} (an accuracy); the "
                                "local-quadratic theory predicts loss levels: give them with --epsilon")
        epsilons = list(th.epsilons)
    worker = Worker(runtime, host)
    rows, preds = [], []
    z = 1.959963984540054
    for task in suite.tasks:
        mine = [t for t in suite.trials if t.model == task.model and t.dataset == task.dataset]
        spec = next((t for t in mine if t.seed == seed), mine[0])
        net, theta0, data = worker.build(spec)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed)
        loss_fn = data.loss or torch.nn.functional.cross_entropy
        theta_T, _ = train_full(net, theta0, data, steps=steps, lr=lr, batch_size=spec.train.batch_size,
                                generator=gen, loss_fn=loss_fn)
        lq = local_quadratic(net, theta0, theta_T, data, loss_fn, k=k, probes=probes, seed=seed)
        metric = th.metric if not suite.higher_is_better else _task_loss_metric(host, data.info.task)
        for r in quadratic_d_star(lq, epsilons, th.delta, samples, seed):
            rows.append((task.model.name, task.dataset.name, net.D, _fmt(lq.loss, 4), _fmt(lq.grad_norm, 4),
                         _fmt(lq.negative_mass, 3), _fmt(lq.R_T, 3), _fmt(lq.lambda_max, 3), r.epsilon,
                         _fmt(r.trust_radius, 3), _fmt(r.w2), _fmt(r.d_star), _fmt(r.lo), _fmt(r.hi), r.status,
                         r.reason))
            for ref, params in _methods(host, suite):
                preds.append({"suite": suite.name, "model": task.model.name, "dataset": task.dataset.name,
                              "method": ref.name, "metric": metric, "epsilon": r.epsilon, "d_star_pred": r.d_star,
                              "d_star_pred_lo": r.lo, "d_star_pred_hi": r.hi, "source": "hessian-lanczos",
                              "model_params": canonical_json(task.model.params),
                              "dataset_params": canonical_json(task.dataset.params), "params": params,
                              "w2": r.w2, "w2_lo": None if r.w2 is None else r.w2 - z * r.w2_se,
                              "w2_hi": None if r.w2 is None else r.w2 + z * r.w2_se, "w2_sd": r.w2_sd,
                              "status": r.status, "reason": r.reason})
    if write:
        store.write_predictions(preds)
    return Table(["model", "dataset", "D", "loss_T", "grad_norm", "negative_mass", "R", "lambda_max", "epsilon",
                  "trust_radius", "w2", "d_star_pred", "lo", "hi", "status", "reason"], rows)


def _task_loss_metric(host, task: str) -> str:
    """'train_NAME' of the metric that is the task's training loss (it declares ``task_loss``)."""
    for comp, _ in host.components("metric"):
        if comp.task_loss and task in comp.tasks:
            return f"train_{comp.name}"
    raise DofbenchError(f"no metric plugin declares itself the training loss of task {task!r} (task_loss = True)")
