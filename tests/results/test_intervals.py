"""Intervals that say something with 5–10 seeds: the coverage of the P_s interval (exactly, and by
simulation), and d*'s profile-likelihood interval — finite on both sides where the transition is
seen, and its coverage by simulation (slow)."""

import math

import numpy as np
import pytest
from scipy.stats import binom, norm

from dofbench.results.intervals import fit_d_star, likelihood_cutoff
from dofbench.results.stats import clopper_pearson_interval, clopper_pearson_table, wilson_interval


def _coverage(interval, n, p):
    """Exact coverage of ``interval`` at P_s = p with n seeds: Σ_k Binom(k; n, p)·[p ∈ I(k)]."""
    bounds = [interval(k, n) for k in range(n + 1)]
    return sum(binom.pmf(k, n, p) for k, (lo, hi) in enumerate(bounds) if lo <= p <= hi)


@pytest.mark.parametrize("n", [5, 10])
def test_p_s_interval_covers_at_least_its_nominal_level(n):
    """Clopper–Pearson at 95 %: coverage ≥ 0.95 at every P_s (exact, on a fine grid of P_s), and
    the same by simulation at the P_s where d* is decided; Wilson falls below it (91.9 % at n = 5,
    P_s = 0.9), which is why the views use Clopper–Pearson."""
    ps = np.linspace(0.005, 0.995, 199)
    exact = [_coverage(clopper_pearson_interval, n, p) for p in ps]
    assert min(exact) >= 0.95
    rng = np.random.default_rng(n)
    for p in (0.5, 0.8, 0.9, 0.95):
        k = rng.binomial(n, p, size=20000)
        table = [clopper_pearson_interval(j, n) for j in range(n + 1)]
        hits = np.mean([table[j][0] <= p <= table[j][1] for j in k])
        assert hits >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / 20000)   # simulated, within its error
    assert _coverage(wilson_interval, n, 0.9) < 0.95
    if n == 5:
        assert _coverage(wilson_interval, 5, 0.9) == pytest.approx(0.9185, abs=1e-3)


def test_the_stored_table_is_clopper_pearson():
    n, k, lo, hi = clopper_pearson_table(6, 0.9, start=5)
    assert len(n) == 6 + 7 and (n[0], k[0], lo[0]) == (5, 0, 0.0) and hi[-1] == 1.0
    for ni, ki, a, b in zip(n, k, lo, hi):
        assert (a, b) == pytest.approx(clopper_pearson_interval(ki, ni, 0.9))


DIMS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]


def test_d_star_interval_is_finite_on_both_sides_where_the_transition_is_seen():
    """The `quick` suite's counts at ε = 0.2 (5 seeds): a Wilson/CP-based interval is unbounded
    above (5/5 never confirms P_s ≥ 0.9); the fit's is finite and holds the grid's d*."""
    counts = {8: (0, 5), 16: (0, 5), 32: (1, 5), 64: (5, 5), 128: (5, 5), 256: (5, 5), 512: (5, 5),
              1024: (5, 5), 2048: (5, 5)}
    assert clopper_pearson_interval(5, 5)[0] < 0.9
    f = fit_d_star(DIMS, 0.1, 0.95, counts=counts, seeds=5)
    assert f.likelihood == "bernoulli" and f.fit_lo is not None and f.fit_hi is not None
    assert 32 < f.fit_lo < f.d_star_fit < f.fit_hi <= 128 and (f.d_star_lo, f.d_star_hi) == (64, 128)
    # nested subspaces: one bracket (d_below, d_first] per seed
    g = fit_d_star(DIMS, 0.1, 0.95, brackets=[(16, 32), (32, 64), (32, 64), (32, 64), (32, 64)])
    assert g.likelihood == "first-success" and g.d_star_lo <= 64 <= g.d_star_hi
    # a transition at the top of the grid: unbounded above, said so
    top = fit_d_star(DIMS, 0.1, 0.95, counts={d: (0 if d < 2048 else 5, 5) for d in DIMS}, seeds=5)
    assert top.d_star_hi is None
    assert fit_d_star(DIMS, 0.1, 0.95, counts={d: (0, 5) for d in DIMS}).note == "no seed succeeded on the grid"
    bad = fit_d_star(DIMS, 0.1, 0.95, counts={d: (5 if d < 256 else 0, 5) for d in DIMS}, seeds=5)
    assert bad.d_star_lo is None and "not monotone" in bad.note


def test_the_small_sample_cutoff():
    assert likelihood_cutoff(0.95, None) == pytest.approx(3.8415 / 2, abs=1e-3)   # Wilks
    assert likelihood_cutoff(0.95, 5) == pytest.approx(5 * math.log1p(2.7764 ** 2 / 4) / 2, abs=1e-3)
    assert likelihood_cutoff(0.95, 5) > likelihood_cutoff(0.95, 10) > likelihood_cutoff(0.95, None)


def _simulate(n, nested, mu, sigma, reps, rng, delta=0.1):
    z = norm.ppf(1 - delta)
    true = math.exp(mu + z * sigma)
    grid_true = next(d for d in DIMS if d >= true)
    cont = grid = 0
    for _ in range(reps):
        if nested:
            ds = np.exp(rng.normal(mu, sigma, n))
            br = [(max([d for d in DIMS if d < x], default=0), next((d for d in DIMS if d >= x), math.inf)) for x in ds]
            f = fit_d_star(DIMS, delta, 0.95, brackets=br)
        else:
            counts = {d: (int(rng.binomial(n, norm.cdf((math.log(d) - mu) / sigma))), n) for d in DIMS}
            f = fit_d_star(DIMS, delta, 0.95, counts=counts, seeds=n)
        cont += (f.fit_lo or 0) <= true <= (f.fit_hi or math.inf)
        grid += f.d_star_lo is not None and f.d_star_lo <= grid_true <= (f.d_star_hi or math.inf)
    return cont / reps, grid / reps


@pytest.mark.slow
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("n", [5, 10])
def test_d_star_interval_coverage_by_simulation(n, nested):
    """Seeds whose first-success dimension is log-normal (the fit's model), a transition around
    d ≈ 60–130 on the quick grid: the grid interval [d_star_lo, d_star_hi] holds the grid's true d*
    at least 95 % of the time; the continuous interval, reported for the record, about its
    nominal level (measured 0.92–0.99 at 300 repetitions, see docs/statistics.md)."""
    rng = np.random.default_rng(100 * n + nested)
    reps = 150
    for sigma in (0.3, 0.7):
        cont, grid = _simulate(n, nested, math.log(60), sigma, reps, rng)
        assert grid >= 0.95 - 2 * math.sqrt(0.95 * 0.05 / reps), (sigma, cont, grid)
        assert cont >= 0.85, (sigma, cont, grid)


def test_angular_dimension_from_first_success_dimensions():
    """w² = D + ½ − mean d_s with a t interval where every d_s is exact; bounds from the brackets
    where the grid only brackets them; bounded above only with a censored seed."""
    from scipy.stats import t

    from dofbench.results.intervals import angular_dimension

    exact = angular_dimension(1000, [(39, 40), (44, 45), (49, 50)], 0.95)
    half = t.ppf(0.975, 2) * np.std([40, 45, 50], ddof=1) / math.sqrt(3)
    assert exact.w2 == pytest.approx(1000.5 - 45) and (exact.w2_lo, exact.w2_hi) == pytest.approx(
        (955.5 - half, 955.5 + half))
    grid = angular_dimension(1000, [(32, 40), (40, 48), (40, 48)], 0.95)
    assert grid.w2 is None and grid.w2_lo < 1000.5 - 45.3 < grid.w2_hi and "bracketed" in grid.note
    cens = angular_dimension(1000, [(32, 40), (64, math.inf)], 0.95)
    assert cens.w2_lo is None and cens.censored == 1
