"""Adaptive vs grid search for d*: both answers and the trial-steps ratio, for several suites.

For each suite, the full grid runs (trials already in the store are reused), then the adaptive
variant of the same suite (search.strategy = adaptive) runs on the same store: its trials are the
grid's own trials, so it reuses them, and what it costs is counted as the steps of the trials it
asked for. Printed per suite: both trial-step totals and their ratio, and the share of seeds whose
success is not monotone in d on the grid (where the nested search may differ from the grid); per
task and ε: the grid's d* with its interval, the adaptive d*, and whether they are the same.

Environment: ``DOFBENCH_BENCH_SUITES`` (comma-separated; default: quick, quadratic,
quadratic-powerlaw, quadratic-bimodal), ``DOFBENCH_BENCH_DB`` (default: a temporary file),
``DOFBENCH_BENCH_EXECUTOR`` (default auto).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

DEFAULT_SUITES = ("quick", "quadratic", "quadratic-powerlaw", "quadratic-bimodal")


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
    seeds = len(spec.seed_list())
    session.store.record_statistics(name, "grid", spec.search.confidence, seeds=seeds, min_seeds=spec.threshold.min_seeds)
    scheduler.run(grid, GridStrategy(grid, session.host))
    ad_name = f"{name}~adaptive"
    ad_spec = spec.model_copy(update={"search": SearchConfig(strategy="adaptive", confidence=spec.search.confidence)})
    adaptive = resolve_suite(session.host, ad_name, ad_spec)
    session.store.record_statistics(ad_name, "adaptive", spec.search.confidence, seeds=seeds,
                                    min_seeds=spec.threshold.min_seeds)
    res = AdaptiveStrategy(adaptive)
    scheduler.run(adaptive, res)
    answers_by_key = res.answers()
    _, rows = session.store.query(
        "SELECT sum(t.steps), count(*) FROM suite_trials s JOIN trials t USING (trial_id) WHERE s.suite = ?", [name])
    grid_steps, grid_trials = rows[0]
    _, mono = session.store.query(
        "SELECT count(*) FILTER (WHERE NOT monotone), count(*) FROM first_success WHERE suite = ?", [name])
    _, lb = session.store.query(
        "SELECT model_params, dataset_params, params, epsilon, d_star, d_star_lo, d_star_hi FROM leaderboard "
        "WHERE suite = ? ORDER BY model_params, dataset_params, epsilon", [name])
    answers = []
    for mp, dp, pp, eps, ds, lo, hi in lb:
        cands = [k for k in answers_by_key if k[1] == mp and k[3] == dp] or list(answers_by_key)
        key = next((k for k in cands if k[5] == pp), cands[0])
        ad = answers_by_key[key][eps]
        answers.append({"task": _task(mp, dp), "epsilon": eps, "grid": ds, "grid_interval": (lo, hi),
                        "adaptive": ad, "same": ds == ad})
    return {"suite": name, "grid_steps": int(grid_steps), "grid_trials": int(grid_trials),
            "adaptive_steps": res.steps, "adaptive_trials": len(res.requested),
            "ratio": res.steps / grid_steps if grid_steps else float("nan"), "answers": answers,
            "non_monotone": mono[0][0], "seed_sequences": mono[0][1]}


def _task(mp: str, dp: str) -> str:
    m, d = json.loads(mp), json.loads(dp)
    return ",".join(f"{k}={v}" for k, v in {**m, **d}.items()
                    if k in ("R", "far_share", "dim", "spectrum", "k", "hidden"))


def main() -> None:
    from dofbench.cli.session import Session
    from dofbench.run.scheduler import executor_for

    names = [s for s in os.environ.get("DOFBENCH_BENCH_SUITES", ",".join(DEFAULT_SUITES)).split(",") if s]
    db = os.environ.get("DOFBENCH_BENCH_DB") or str(Path(tempfile.mkdtemp()) / "bench_adaptive.duckdb")
    session = Session(db=db)
    ex = executor_for(os.environ.get("DOFBENCH_BENCH_EXECUTOR", "auto"), session.host, session.runtime, None)
    total_g = total_a = 0
    same = total = 0
    try:
        for name in names:
            r = compare(session, name, ex)
            total_g += r["grid_steps"]
            total_a += r["adaptive_steps"]
            print(f"{name}: grid {r['grid_trials']} trials / {r['grid_steps']} trial-steps, adaptive "
                  f"{r['adaptive_trials']} trials / {r['adaptive_steps']} trial-steps: ratio {r['ratio']:.2f}; "
                  f"non-monotone seeds on the grid: {r['non_monotone']} of {r['seed_sequences']} (seed, ε) sequences",
                  flush=True)
            for a in r["answers"]:
                lo, hi = a["grid_interval"]
                same += a["same"]
                total += 1
                print(f"  {a['task']:<44} ε={a['epsilon']:<7g} grid d*={a['grid']} [{lo}, {hi if hi else '…'}]"
                      f"  adaptive d*={a['adaptive']}  {'same' if a['same'] else 'DIFFERENT'}", flush=True)
    finally:
        ex.close()
    if total_g:
        print(f"all suites: adaptive / grid trial-steps = {total_a / total_g:.2f}; identical d* in {same} of {total}")


if __name__ == "__main__":
    main()
