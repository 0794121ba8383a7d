-- The views of the results store: written into the store when it is opened for writing, and created
-- as temporary views of a reader's own connection (dofbench.results.migrations.create_views), so a
-- reader sees these whatever version wrote the file. Statements end with a semicolon at the end of a line.

-- One row per suite member: the suite's own resolution of the trial (so a trial stored before a
-- component gained a parameter stays in the group of its newer siblings) and how it ended
-- (status NULL: not stored yet). A member planned by a suite counts as planned whether or not its
-- trial ran, so the views can tell a d with all its seeds from one with missing seeds.
CREATE VIEW members AS
SELECT st.suite, st.trial_id,
       coalesce(st.model, t.model) AS model, coalesce(st.model_params, t.model_params) AS model_params,
       coalesce(st.dataset, t.dataset) AS dataset, coalesce(st.dataset_params, t.dataset_params) AS dataset_params,
       coalesce(st.method, t.method) AS method, coalesce(st.params, t.params) AS params,
       coalesce(st.label, t.label) AS label, coalesce(t.model_label, st.model, t.model) AS model_label,
       coalesce(t.dataset_label, st.dataset, t.dataset) AS dataset_label, coalesce(st.baseline, false) AS baseline,
       coalesce(st.yardstick, false) AS yardstick, coalesce(st.nested, false) AS nested, coalesce(st.d, t.d) AS d, coalesce(st.seed, t.seed) AS seed,
       t.total_params, t.status, t.metrics, t.steps
FROM suite_trials st
LEFT JOIN trials t ON t.trial_id = st.trial_id;

-- One row per (suite, member, success threshold): the trial's value of the suite's metric and the
-- one definition of success used everywhere (dofbench.results.stats.succeeded): the trial trained
-- to the end (status 'ok') and its metric reaches ε. A diverged trial is usable evidence and never a
-- success, whatever its last finite evaluation said; a failed or missing trial is no evidence.
CREATE VIEW trial_values AS
SELECT m.suite, m.trial_id, m.model, m.model_params, m.dataset, m.dataset_params, m.method, m.params, m.label,
       m.model_label, m.dataset_label, m.baseline, m.yardstick, m.nested, m.d, m.total_params, m.seed, m.status,
       th.metric, th.epsilon, th.delta, th.higher_is_better,
       TRY_CAST(json_extract_string(m.metrics, '$."' || th.metric || '"') AS DOUBLE) AS value,
       coalesce(m.status IN ('ok', 'diverged'), false) AS usable,
       coalesce(m.status = 'ok' AND CASE WHEN th.higher_is_better
                THEN TRY_CAST(json_extract_string(m.metrics, '$."' || th.metric || '"') AS DOUBLE) >= th.epsilon
                ELSE TRY_CAST(json_extract_string(m.metrics, '$."' || th.metric || '"') AS DOUBLE) <= th.epsilon END,
                false) AS success
FROM members m
JOIN suite_thresholds th ON th.suite = m.suite
WHERE m.model IS NOT NULL;

-- P_s(d, ε) per suite, task and method over the usable seeds (n), with its Clopper–Pearson interval
-- at the suite's confidence level (coverage ≥ that level for every P_s and n), and whether the d
-- is eligible for d*: at least `required` usable seeds (threshold.min_seeds, default every seed).
-- model_label, dataset_label and label show each component with its non-default params.
CREATE VIEW success AS
WITH c AS (
    SELECT suite, model, model_params, dataset, dataset_params, method, params,
           any_value(label) AS label, any_value(model_label) AS model_label,
           any_value(dataset_label) AS dataset_label, bool_or(yardstick) AS yardstick, d, any_value(total_params) AS total_params, metric, epsilon,
           any_value(delta) AS delta, bool_or(nested) AS nested,
           count(*) AS n_planned,
           count(*) FILTER (WHERE usable) AS n,
           count(*) FILTER (WHERE status = 'diverged') AS n_diverged,
           count(*) FILTER (WHERE status = 'failed') AS n_failed,
           count(*) FILTER (WHERE status IS NULL) AS n_missing,
           count(*) FILTER (WHERE success) AS successes
    FROM trial_values
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, d, metric, epsilon
), w AS (
    SELECT c.*, coalesce(s.confidence, 0.95) AS confidence,
           greatest(1, coalesce(s.min_seeds, s.seeds, c.n_planned)) AS required
    FROM c LEFT JOIN suite_statistics s USING (suite)
)
SELECT w.suite, w.model, w.model_params, w.dataset, w.dataset_params, w.method, w.params, w.label,
       w.model_label, w.dataset_label, w.yardstick, w.d,
       w.total_params, w.metric, w.epsilon, w.delta, w.n, w.successes,
       CASE WHEN w.n > 0 THEN w.successes / w.n END AS p_success, b.lo AS p_lo, b.hi AS p_hi, w.confidence,
       w.n_planned, w.n_diverged, w.n_failed, w.n_missing, w.required, w.n >= w.required AS eligible, w.nested
FROM w
LEFT JOIN binomial_intervals b ON b.n = w.n AND b.k = w.successes AND abs(b.confidence - w.confidence) < 1e-12;

-- Per (suite, task, method, metric, ε, seed): the seed's first successful d (d_first; NULL: it never
-- succeeded) and the largest d below it where it failed (d_below; 0: none), so its first-success
-- dimension d_s lies in (d_below, d_first] — exact when d_first = d_below + 1. With nested subspaces
-- success is geometrically monotone in d per seed; failures_above counts the seed's failures at
-- d > d_first (an optimizer that did worse in a larger subspace): monotone = none.
CREATE VIEW first_success AS
WITH f AS (
    SELECT suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon, seed,
           min(d) FILTER (WHERE success) AS d_first
    FROM trial_values WHERE usable AND NOT baseline
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon, seed
)
SELECT f.suite, f.model, f.model_params, f.dataset, f.dataset_params, f.method, f.params,
       any_value(t.label) AS label, f.metric, f.epsilon, f.seed, any_value(t.total_params) AS total_params,
       bool_or(t.nested) AS nested, count(*) AS trials,
       coalesce(max(t.d) FILTER (WHERE NOT t.success AND (f.d_first IS NULL OR t.d < f.d_first)), 0) AS d_below,
       f.d_first,
       f.d_first IS NOT NULL AND f.d_first = coalesce(max(t.d) FILTER (WHERE NOT t.success AND t.d < f.d_first), 0) + 1
         AS exact,
       count(*) FILTER (WHERE NOT t.success AND t.d > f.d_first) AS failures_above,
       count(*) FILTER (WHERE NOT t.success AND t.d > f.d_first) = 0 AS monotone
FROM f
JOIN trial_values t USING (suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon, seed)
WHERE t.usable
GROUP BY f.suite, f.model, f.model_params, f.dataset, f.dataset_params, f.method, f.params, f.metric, f.epsilon,
         f.seed, f.d_first;

-- Per (suite, task, method, metric, ε): the first-success brackets of its seeds as one string, what
-- an empirical angular dimension (table angular_dimension) was computed from.
CREATE VIEW first_success_evidence AS
SELECT suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon,
       string_agg(seed || ':' || d_below || '-' || coalesce(d_first, -1), ',' ORDER BY seed) AS evidence
FROM first_success
GROUP BY suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon;

-- d*(ε) = the smallest eligible d with P_s ≥ 1 − δ (the grid's, or the adaptive search's for adaptive
-- suites), the seeds it rests on and whether every d of the grid was eligible (complete); its
-- interval (d_star_lo, d_star_hi: the profile-likelihood interval of dofbench.results.intervals,
-- shown only while it was computed from the evidence the view sees now; d_star_fit with fit_lo/hi:
-- the fitted continuous d* and its interval); Li et al.'s d_int90 against the suite's own
-- full-training baseline; ranked within each task and ε by d*, then d*/D, then the relative width
-- d_star_fit_hi / d_star_fit_lo of d*'s interval. A NULL d* is not ranked. yardstick: the method the
-- comparison (dofbench compare) measures the others against; min_d, max_d: the grid's ends.
CREATE VIEW leaderboard AS
WITH g AS (
    SELECT suite, model, model_params, dataset, dataset_params, method, params,
           any_value(label) AS label, any_value(model_label) AS model_label,
           any_value(dataset_label) AS dataset_label, bool_or(yardstick) AS yardstick, metric, epsilon, any_value(delta) AS delta, any_value(total_params) AS total_params,
           min(d) FILTER (WHERE eligible AND successes >= (1 - delta) * n - 1e-9) AS grid_d_star,
           count(*) FILTER (WHERE NOT eligible) AS incomplete_dims, count(*) AS n_dims, min(d) AS min_d, max(d) AS max_d,
           string_agg(d || ':' || successes || '/' || n, ',' ORDER BY d) AS evidence
    FROM success
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon
), means AS (          -- mean metric per d over its trials that trained to the end (each counted once)
    SELECT suite, model, model_params, dataset, dataset_params, method, params, d, metric,
           bool_or(baseline) AS baseline, any_value(higher_is_better) AS higher_is_better,
           avg(value) FILTER (WHERE status = 'ok') AS mean_value,
           count(*) FILTER (WHERE usable) AS n, count(*) FILTER (WHERE status = 'diverged') AS n_diverged
    FROM (SELECT DISTINCT suite, model, model_params, dataset, dataset_params, method, params, baseline, d,
                          metric, higher_is_better, trial_id, status, usable, value FROM trial_values)
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, d, metric
), base AS (           -- the full-training baseline the suite runs itself
    SELECT suite, model, model_params, dataset, dataset_params, metric, avg(mean_value) AS baseline
    FROM means WHERE baseline AND higher_is_better
    GROUP BY ALL
), dint AS (           -- a d is eligible for d_int90 as for d*, and only without a diverged seed
    SELECT m.suite, m.model, m.model_params, m.dataset, m.dataset_params, m.method, m.params, m.metric,
           min(m.d) FILTER (WHERE m.mean_value > 0.9 * b.baseline AND m.n_diverged = 0
                              AND m.n >= greatest(1, coalesce(st.min_seeds, st.seeds, m.n))) AS d_int90,
           any_value(b.baseline) AS baseline
    FROM means m JOIN base b USING (suite, model, model_params, dataset, dataset_params, metric)
    LEFT JOIN suite_statistics st ON st.suite = m.suite
    GROUP BY ALL
), s AS (
    SELECT suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon,
           any_value(d_star) AS d_star, any_value(n_seeds) AS n_seeds, any_value(complete) AS complete
    FROM searches GROUP BY ALL
), j AS (
    SELECT g.*, coalesce(st.strategy, 'grid') AS estimator, dint.d_int90, dint.baseline,
           CASE WHEN coalesce(st.strategy, 'grid') = 'grid' THEN g.grid_d_star ELSE s.d_star END AS d_star,
           CASE WHEN coalesce(st.strategy, 'grid') = 'grid' THEN g.incomplete_dims = 0 ELSE s.complete END AS complete,
           s.n_seeds AS search_n_seeds
    FROM g
    LEFT JOIN suite_statistics st USING (suite)
    LEFT JOIN s USING (suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon)
    LEFT JOIN dint USING (suite, model, model_params, dataset, dataset_params, method, params, metric)
), k AS (
    SELECT j.*, coalesce(j.search_n_seeds, x.n) AS n_seeds, i.d_star_lo, i.d_star_hi, i.d_star_fit,
           i.fit_lo AS d_star_fit_lo, i.fit_hi AS d_star_fit_hi
    FROM j
    LEFT JOIN success x ON x.suite = j.suite AND x.model = j.model AND x.model_params = j.model_params
         AND x.dataset = j.dataset AND x.dataset_params = j.dataset_params AND x.method = j.method
         AND x.params = j.params AND x.metric = j.metric AND x.epsilon = j.epsilon AND x.d = j.d_star
    LEFT JOIN d_star_intervals i ON i.suite = j.suite AND i.model = j.model AND i.model_params = j.model_params
         AND i.dataset = j.dataset AND i.dataset_params = j.dataset_params AND i.method = j.method
         AND i.params = j.params AND i.metric = j.metric AND i.epsilon = j.epsilon AND i.evidence = j.evidence
)
SELECT suite, model, model_params, dataset, dataset_params, method, params, label, metric, epsilon, delta, d_star,
       total_params, d_star / total_params AS d_star_fraction, n_seeds, max_d,
       CASE WHEN d_star IS NOT NULL THEN
           rank() OVER (PARTITION BY suite, model, model_params, dataset, dataset_params, metric, epsilon
                        ORDER BY d_star ASC NULLS LAST, d_star / total_params ASC NULLS LAST,
                                 d_star_fit_hi / d_star_fit_lo ASC NULLS LAST) END AS rank,
       d_star_lo, d_star_hi, d_int90, baseline, estimator, complete, incomplete_dims, d_star_fit, d_star_fit_lo,
       d_star_fit_hi, evidence, model_label, dataset_label, yardstick, min_d
FROM k;

-- The local angular dimension w² measured from the seeds' first-success dimensions (Crofton:
-- w² = D + ½ − mean d_s; table angular_dimension, shown while its evidence is current) next to the
-- theory's prediction (table predictions: the quadratic well's, or the gated Hessian model's, with
-- status 'not applicable' and its reason where the local quadratic model does not hold). The
-- theory's interval is for the mean of this many seeds: w²_theory ± z·√(sd²/seeds + se²), sd the
-- predicted spread of d_s across seeds, se the Monte Carlo error; within = the empirical w² inside it.
CREATE VIEW angular_dimension_vs_theory AS
WITH p AS (
    SELECT *, (w2_hi - w2_lo) / 2 AS w2_half FROM predictions
)
SELECT a.suite, a.model, a.model_params, a.dataset, a.dataset_params, a.method, a.params, a.label, a.metric,
       a.epsilon, a.D, a.seeds, a.exact, a.censored, a.non_monotone, a.mean_d_s, a.w2, a.w2_lo, a.w2_hi,
       p.source, p.status AS theory_status, p.reason AS theory_reason, p.w2 AS w2_theory,
       p.w2 - coalesce(st.z, 1.959963984540054) * sqrt(coalesce(p.w2_sd, 0) ^ 2 / a.seeds
              + (coalesce(p.w2_half, 0) / coalesce(st.z, 1.959963984540054)) ^ 2) AS w2_theory_lo,
       p.w2 + coalesce(st.z, 1.959963984540054) * sqrt(coalesce(p.w2_sd, 0) ^ 2 / a.seeds
              + (coalesce(p.w2_half, 0) / coalesce(st.z, 1.959963984540054)) ^ 2) AS w2_theory_hi,
       p.d_star_pred
FROM angular_dimension a
JOIN first_success_evidence f ON f.suite = a.suite AND f.model = a.model AND f.model_params = a.model_params
     AND f.dataset = a.dataset AND f.dataset_params = a.dataset_params AND f.method = a.method
     AND f.params = a.params AND f.metric = a.metric AND f.epsilon = a.epsilon AND f.evidence = a.evidence
LEFT JOIN suite_statistics st ON st.suite = a.suite
LEFT JOIN p ON p.suite = a.suite AND p.model = a.model AND p.dataset = a.dataset AND p.metric = a.metric
     AND abs(p.epsilon - a.epsilon) < 1e-12 AND coalesce(p.model_params, a.model_params) = a.model_params
     AND coalesce(p.dataset_params, a.dataset_params) = a.dataset_params
     AND (p.method = a.method OR p.method = a.label)
     AND coalesce(p.params, a.params) = a.params;
