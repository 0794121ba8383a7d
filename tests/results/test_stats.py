"""P_s confidence intervals and d_int90: Python reference vs the store's views."""

import math

import pytest

from dofbench.results import intervals
from dofbench.results.stats import clopper_pearson_interval, d_int90, wilson_interval, z_value
from dofbench.results.store import Store


def test_wilson_and_clopper_pearson_known_values():
    z = z_value(0.95)
    assert z == pytest.approx(1.959964, abs=1e-5)
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0 and hi == pytest.approx(z * z / (5 + z * z))
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and lo == pytest.approx(5 / (5 + z * z))
    # Clopper–Pearson: 0/n has upper bound 1 − (α/2)^(1/n); it is wider than Wilson
    lo, hi = clopper_pearson_interval(0, 10, 0.95)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** 0.1)
    for k in range(11):
        w, c = wilson_interval(k, 10), clopper_pearson_interval(k, 10)
        assert c[0] <= w[0] + 1e-12 and c[1] >= w[1] - 1e-12
        assert w[0] <= k / 10 <= w[1]
    assert wilson_interval(3, 10, 0.99)[1] > wilson_interval(3, 10, 0.9)[1]


def test_d_int90():
    assert d_int90({8: 0.2, 16: 0.85, 32: 0.95}, baseline=1.0) == 32
    assert d_int90({8: 0.2}, baseline=1.0) is None


def test_store_views_match_the_python_reference(db, synthetic_result):
    store = Store(db)
    accs = {10: [0.3] * 6, 20: [0.6, 0.7, 0.2, 0.65, 0.8, 0.9], 40: [0.8] * 6, 80: [0.95] * 6}
    rs = [synthetic_result("sub", d, s, a, metrics={"train_acc": a}, evals=[])
          for d, vals in accs.items() for s, a in enumerate(vals)]
    full = [synthetic_result("full", 1000, s, a, metrics={"train_acc": a}, evals=[])  # the baseline: mean 0.97
            for s, a in enumerate([0.96, 0.98])]
    store.write_results(rs + full, "s")
    ids = [r.trial_id for r in rs + full]
    baselines = {r.trial_id for r in full}
    store.register_suite("s", "", {}, "test", ids, "train_acc", [0.5], 0.1, True, baselines=baselines)
    for conf in (0.95, 0.8):
        store.record_statistics("s", "grid", conf, seeds=6)
        rows = store.query("select d, successes, n, p_lo, p_hi from success where method = 'sub' order by d")[1]
        for d, k, n, lo, hi in rows:
            assert (lo, hi) == pytest.approx(clopper_pearson_interval(k, n, conf))
        assert intervals.refresh(store, "s") == 1  # the baseline's single d has no transition to fit
        ref = intervals.fit_d_star(list(accs), 0.1, conf, counts={d: (k, n) for d, k, n, _, _ in rows}, seeds=6)
        lb = store.query("select d_star, d_star_lo, d_star_hi, d_star_fit, d_int90, baseline, estimator, rank "
                         "from leaderboard where method = 'sub'")[1][0]
        assert lb[0] == 40 and lb[1:3] == (ref.d_star_lo, ref.d_star_hi) and lb[3] == pytest.approx(ref.d_star_fit)
        assert lb[1] <= lb[0] <= lb[2]
        assert lb[4] == d_int90({d: sum(v) / len(v) for d, v in accs.items()}, 0.97)
        assert lb[4] == 80 and lb[5] == pytest.approx(0.97) and lb[6] == "grid" and lb[7] == 1
    assert math.isclose(store.query("select confidence from success limit 1")[1][0][0], 0.8)
    # new evidence makes the stored interval stale: the leaderboard stops showing it
    r = synthetic_result("sub", 10, 6, 0.9, metrics={"train_acc": 0.9}, evals=[])
    store.write_result(r, "s")
    store.register_suite("s", "", {}, "test", ids + [r.trial_id], "train_acc", [0.5], 0.1, True, baselines=baselines)
    assert store.query("select d_star_lo, d_star_hi from leaderboard where method = 'sub'")[1] == [(None, None)]
