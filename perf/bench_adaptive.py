"""Adaptive vs grid search for d*: trial-steps ratio and both answers, for several suites.

For each suite, the full grid runs (trials already in the store are reused), then the adaptive
variant of the same suite (search.strategy = adaptive) runs on the same store: its trials are the
grid's own trials, so it reuses them, and what it costs is counted as the steps of the trials it
asked for. Printed per suite: both trial-step totals and their ratio; per task and ε: the grid's
d* with its interval, the adaptive d*, and whether they agree (equal, or adjacent on the grid and
inside the grid's interval).

Environment: ``DOFBENCH_BENCH_SUITES`` (comma-separated; default: quadratic, quadratic-powerlaw,
quick), ``DOFBENCH_BENCH_DB`` (default: a temporary file), ``DOFBENCH_BENCH_EXECUTOR`` (default
auto).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

DEFAULT_SUITES = ("quadratic", "quadratic-powerlaw", "quick")


def compare(session, name: str, executor) -> dict:
    from dofbench.run.adaptive import AdaptiveStrategy
    from dofbench.run.grid import GridStrategy
    from dofbench.run.scheduler import Scheduler
    from dofbench.config.schemas import SearchConfig
    from dofbench.config.suites import get_suite, load_suite_file
    from dofbench.run.resolve import resolve_suite

    spec = get_suite(load_suite_file(session.config), name)
    grid = resolve_suite(session.host, name, spec.model_copy(update={"search": SearchConfig()}))
    scheduler = Scheduler(session.store, executor, progress=False)
    scheduler.run(grid, GridStrategy(grid, session.host))
    ad_name = f"{name}~adaptive"
    ad_spec = spec.model_copy(update={"search": SearchConfig(strategy="adaptive",
                                                             confidence=spec.search.confidence)})
    adaptive = resolve_suite(session.host, ad_name, ad_spec)
    res = AdaptiveStrategy(adaptive)
    scheduler.run(adaptive, res)
    answers_by_key = res.answers()
    _, rows = session.store.query(
        "SELECT sum(t.steps), count(*) FROM suite_trials s JOIN trials t USING (trial_id) WHERE s.suite = ?", [name])
    grid_steps, grid_trials = rows[0]
    _, lb = session.store.query(
        "SELECT model_params, dataset_params, params, epsilon, d_star, d_star_lo, d_star_hi FROM leaderboard "
        "WHERE suite = ? ORDER BY model_params, dataset_params, epsilon", [name])
    dims = sorted(set(spec.dims))
    answers = []
    for mp, dp, pp, eps, ds, lo, hi in lb:
        # match the task; method params only where several methods share it (stored rows keep
        # the params JSON of the version that ran them)
        cands = [k for k in answers_by_key if k[1] == mp and k[3] == dp] or list(answers_by_key)
        key = next((k for k in cands if k[5] == pp), cands[0])
        ad = answers_by_key[key][eps]
        answers.append({"task": _task(mp, dp), "epsilon": eps, "grid": ds, "grid_interval": (lo, hi),
                        "adaptive": ad, "agree": _agree(ds, ad, lo, hi, dims)})
    return {"suite": name, "grid_steps": int(grid_steps), "grid_trials": int(grid_trials),
            "adaptive_steps": res.steps, "adaptive_trials": len(res.requested),
            "ratio": res.steps / grid_steps if grid_steps else float("nan"), "answers": answers}


def _task(mp: str, dp: str) -> str:
    m, d = json.loads(mp), json.loads(dp)
    return ",".join(f"{k}={v}" for k, v in {**m, **d}.items() if k in ("R", "dim", "spectrum", "k", "hidden"))


def _agree(grid: int | None, ad: int | None, lo: int | None, hi: int | None, dims: list[int]) -> str:
    if grid == ad:
        return "same"
    if grid is None or ad is None:
        return "DIFFERENT"
    adjacent = abs(dims.index(grid) - dims.index(ad)) == 1
    inside = (lo is None or ad >= lo) and (hi is None or ad <= hi)
    return "adjacent, in interval" if adjacent and inside else "DIFFERENT"


def main() -> None:
    from dofbench.cli.session import Session
    from dofbench.run.scheduler import executor_for

    names = [s for s in os.environ.get("DOFBENCH_BENCH_SUITES", ",".join(DEFAULT_SUITES)).split(",") if s]
    db = os.environ.get("DOFBENCH_BENCH_DB") or str(Path(tempfile.mkdtemp()) / "bench_adaptive.duckdb")
    session = Session(db=db)
    ex = executor_for(os.environ.get("DOFBENCH_BENCH_EXECUTOR", "auto"), session.host, session.runtime, None)
    total_g = total_a = 0
    try:
        for name in names:
            r = compare(session, name, ex)
            total_g += r["grid_steps"]
            total_a += r["adaptive_steps"]
            print(f"{name}: grid {r['grid_trials']} trials / {r['grid_steps']} trial-steps, adaptive "
                  f"{r['adaptive_trials']} trials / {r['adaptive_steps']} trial-steps: ratio {r['ratio']:.2f}",
                  flush=True)
            for a in r["answers"]:
                lo, hi = a["grid_interval"]
                print(f"  {a['task']:<40} ε={a['epsilon']:<7g} grid d*={a['grid']} [{lo}, {hi if hi else '…'}]"
                      f"  adaptive d*={a['adaptive']}  {a['agree']}", flush=True)
    finally:
        ex.close()
    if total_g:
        print(f"all suites: adaptive / grid trial-steps = {total_a / total_g:.2f}")


if __name__ == "__main__":
    main()
