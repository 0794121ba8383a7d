"""Nested vs independent subspaces on the same suite: is P_s(d, ε) the same, and how monotone is
per-seed success?

The suite runs twice on one store — with the method's ``nested`` as the suite file has it and with
the opposite — over ``DOFBENCH_BENCH_SEEDS`` seeds (default 10). Printed per (ε, d): P_s of each
and the two-sided p-value of Fisher's exact test of their equality; then the combined evidence
(Fisher's method over the cells, and the largest |difference|), and for the nested runs the share
of (seed, ε) success sequences that are not monotone in d.

Environment: ``DOFBENCH_BENCH_SUITES`` (default: quick), ``DOFBENCH_BENCH_SEEDS``,
``DOFBENCH_BENCH_DIMS`` (comma-separated: another grid, e.g. points between the suite's, where its
transitions are),
``DOFBENCH_BENCH_DB`` (default: a temporary file), ``DOFBENCH_BENCH_EXECUTOR`` (default auto).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path


def _variant(spec, nested: bool, seeds: int, dims: list[int] | None):
    methods = [m.model_copy(update={"params": {**m.params, "nested": nested}}) for m in spec.methods]
    return spec.model_copy(update={"methods": methods, "seeds": seeds, **({"dims": dims} if dims else {})})


def compare(session, name: str, executor, seeds: int, dims: list[int] | None = None) -> dict:
    from scipy.stats import chi2, fisher_exact

    from dofbench.config.suites import get_suite, load_suite_file
    from dofbench.run.grid import GridStrategy
    from dofbench.run.resolve import resolve_suite
    from dofbench.run.scheduler import Scheduler

    spec = get_suite(load_suite_file(session.config), name)
    scheduler = Scheduler(session.store, executor, progress=False)
    ps = {}
    for nested in (True, False):
        sname = f"{name}~{'nested' if nested else 'independent'}"
        suite = resolve_suite(session.host, sname, _variant(spec, nested, seeds, dims))
        session.store.record_statistics(sname, "grid", spec.search.confidence, seeds=seeds)
        scheduler.run(suite, GridStrategy(suite, session.host))
        _, rows = session.store.query("SELECT epsilon, d, successes, n FROM success WHERE suite = ?", [sname])
        ps[nested] = {(e, d): (k, n) for e, d, k, n in rows}
    _, mono = session.store.query(
        "SELECT count(*) FILTER (WHERE NOT monotone), count(*) FROM first_success WHERE suite = ?", [f"{name}~nested"])
    cells = []
    for key in sorted(ps[True]):
        (k1, n1), (k2, n2) = ps[True][key], ps[False].get(key, (0, 0))
        if not (n1 and n2):
            continue
        p = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])[1]
        cells.append((key, k1 / n1, k2 / n2, p))
    informative = [c for c in cells if not (c[1] == c[2] and c[1] in (0.0, 1.0))]
    stat = -2 * sum(math.log(max(c[3], 1e-300)) for c in informative)
    combined = float(chi2.sf(stat, 2 * len(informative))) if informative else 1.0
    return {"cells": cells, "informative": len(informative), "combined_p": combined,
            "max_diff": max((abs(c[1] - c[2]) for c in cells), default=0.0),
            "non_monotone": mono[0][0], "sequences": mono[0][1]}


def main() -> None:
    from dofbench.cli.session import Session
    from dofbench.run.scheduler import executor_for

    names = [s for s in os.environ.get("DOFBENCH_BENCH_SUITES", "quick").split(",") if s]
    seeds = int(os.environ.get("DOFBENCH_BENCH_SEEDS", "10"))
    dims = [int(d) for d in os.environ.get("DOFBENCH_BENCH_DIMS", "").split(",") if d] or None
    db = os.environ.get("DOFBENCH_BENCH_DB") or str(Path(tempfile.mkdtemp()) / "bench_nested.duckdb")
    session = Session(db=db)
    ex = executor_for(os.environ.get("DOFBENCH_BENCH_EXECUTOR", "auto"), session.host, session.runtime, None)
    try:
        for name in names:
            r = compare(session, name, ex, seeds, dims)
            print(f"{name} ({seeds} seeds): P_s nested vs independent per (ε, d), Fisher's exact p", flush=True)
            for (e, d), p1, p2, p in r["cells"]:
                print(f"  ε={e:<6g} d={d:<6} nested {p1:.2f}  independent {p2:.2f}  p={p:.2f}")
            print(f"  {r['informative']} cells inside a transition; Fisher's combined p = {r['combined_p']:.2f}; "
                  f"largest |ΔP_s| = {r['max_diff']:.2f}")
            share = r["non_monotone"] / r["sequences"] if r["sequences"] else float("nan")
            print(f"  nested: {r['non_monotone']} of {r['sequences']} (seed, ε) success sequences not monotone in d "
                  f"({share:.1%})", flush=True)
    finally:
        ex.close()


if __name__ == "__main__":
    main()
