-- The views of the results store: recreated whenever the store is opened for writing
-- (dofbench.results.migrations.create_views). Statements end with a semicolon at the end of a line.

-- One row per (suite, trial, success threshold): the trial's value of the suite's metric.
-- A suite sees each trial with its own, current resolution of the params (suite_trials), so a trial
-- stored before a component gained a parameter stays in the group of its newer siblings.
-- Failed trials are no evidence either way: they are left out (n counts the others).
CREATE VIEW trial_values AS
SELECT st.suite, t.trial_id, t.model, coalesce(st.model_params, t.model_params) AS model_params,
       t.dataset, coalesce(st.dataset_params, t.dataset_params) AS dataset_params, t.method,
       coalesce(st.params, t.params) AS params, coalesce(st.label, t.label) AS label,
       coalesce(t.model_label, t.model) AS model_label, coalesce(t.dataset_label, t.dataset) AS dataset_label,
       coalesce(st.baseline, false) AS baseline, coalesce(st.yardstick, false) AS yardstick,
       t.d, t.total_params, t.seed, t.status,
       th.metric, th.epsilon, th.delta, th.higher_is_better,
       TRY_CAST(json_extract_string(t.metrics, '$."' || th.metric || '"') AS DOUBLE) AS value
FROM suite_trials st
JOIN trials t ON t.trial_id = st.trial_id
JOIN suite_thresholds th ON th.suite = st.suite
WHERE t.status IN ('ok', 'diverged');

-- P_s(d, ε) per suite, task and method, with its Wilson interval at the suite's confidence level.
-- model_label, dataset_label and label show each component with its non-default params.
CREATE VIEW success AS
WITH c AS (
    SELECT suite, model, model_params, dataset, dataset_params, method, params,
           any_value(label) AS label, any_value(model_label) AS model_label,
           any_value(dataset_label) AS dataset_label, bool_or(yardstick) AS yardstick, d, any_value(total_params) AS total_params, metric, epsilon,
           any_value(delta) AS delta, count(*) AS n,
           count(*) FILTER (WHERE value IS NOT NULL AND
                            CASE WHEN higher_is_better THEN value >= epsilon ELSE value <= epsilon END)
             AS successes
    FROM trial_values
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, d, metric, epsilon
), w AS (
    SELECT c.*, successes / n AS p_success,
           coalesce(s.confidence, 0.95) AS confidence, coalesce(s.z, 1.959963984540054) AS z
    FROM c LEFT JOIN suite_statistics s USING (suite)
)
SELECT suite, model, model_params, dataset, dataset_params, method, params, label, model_label, dataset_label,
       yardstick, d, total_params, metric, epsilon, delta, n, successes, p_success,
       greatest(0.0, (successes + z * z / 2) / (n + z * z)
                     - z / (n + z * z) * sqrt(successes * (n - successes) / n + z * z / 4)) AS p_lo,
       least(1.0, (successes + z * z / 2) / (n + z * z)
                  + z / (n + z * z) * sqrt(successes * (n - successes) / n + z * z / 4)) AS p_hi,
       confidence
FROM w;

-- d*(ε) = the smallest d with P_s ≥ 1 − δ (the grid's, or the adaptive search's for adaptive suites),
-- its interval, Li et al.'s d_int90 against the suite's own full-training baseline, ranked within
-- each task and ε by d*, then d*/D, then the width of d*'s interval. yardstick: the method the
-- comparison (dofbench compare) measures the others against.
CREATE VIEW leaderboard AS
WITH g AS (
    SELECT suite, model, model_params, dataset, dataset_params, method, params,
           any_value(label) AS label, any_value(model_label) AS model_label,
           any_value(dataset_label) AS dataset_label, bool_or(yardstick) AS yardstick, metric, epsilon, any_value(delta) AS delta, any_value(total_params) AS total_params,
           min(d) FILTER (WHERE successes >= (1 - delta) * n - 1e-9) AS grid_d_star,
           min(d) FILTER (WHERE p_hi >= 1 - delta - 1e-9) AS d_star_lo,
           min(d) FILTER (WHERE p_lo >= 1 - delta - 1e-9) AS d_star_hi,
           min(n) AS min_n, min(d) AS min_d, max(d) AS max_d
    FROM success
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon
), means AS (          -- mean metric per d (each trial counted once)
    SELECT suite, model, model_params, dataset, dataset_params, method, params, d, metric,
           bool_or(baseline) AS baseline, any_value(higher_is_better) AS higher_is_better,
           avg(value) AS mean_value
    FROM (SELECT DISTINCT suite, model, model_params, dataset, dataset_params, method, params, baseline, d,
                          metric, higher_is_better, trial_id, value FROM trial_values)
    GROUP BY suite, model, model_params, dataset, dataset_params, method, params, d, metric
), base AS (           -- the full-training baseline the suite runs itself
    SELECT suite, model, model_params, dataset, dataset_params, metric, avg(mean_value) AS baseline
    FROM means WHERE baseline AND higher_is_better
    GROUP BY ALL
), dint AS (
    SELECT m.suite, m.model, m.model_params, m.dataset, m.dataset_params, m.method, m.params, m.metric,
           min(m.d) FILTER (WHERE m.mean_value > 0.9 * b.baseline) AS d_int90, any_value(b.baseline) AS baseline
    FROM means m JOIN base b USING (suite, model, model_params, dataset, dataset_params, metric)
    GROUP BY ALL
), s AS (
    SELECT suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon,
           any_value(d_star) AS d_star
    FROM searches GROUP BY ALL
), j AS (
    SELECT g.*, CASE WHEN coalesce(st.strategy, 'grid') = 'adaptive' THEN s.d_star ELSE g.grid_d_star END AS d_star,
           coalesce(st.strategy, 'grid') AS estimator, dint.d_int90, dint.baseline
    FROM g
    LEFT JOIN suite_statistics st USING (suite)
    LEFT JOIN s USING (suite, model, model_params, dataset, dataset_params, method, params, metric, epsilon)
    LEFT JOIN dint USING (suite, model, model_params, dataset, dataset_params, method, params, metric)
)
SELECT j.suite, j.model, j.model_params, j.dataset, j.dataset_params, j.method, j.params, j.label,
       j.metric, j.epsilon, j.delta, j.d_star, j.total_params, j.d_star / j.total_params AS d_star_fraction,
       coalesce(x.n, j.min_n) AS n_seeds, j.max_d,
       rank() OVER (PARTITION BY j.suite, j.model, j.model_params, j.dataset, j.dataset_params, j.metric, j.epsilon
                    ORDER BY j.d_star ASC NULLS LAST, j.d_star / j.total_params ASC NULLS LAST,
                             (j.d_star_hi - j.d_star_lo) ASC NULLS LAST) AS rank,
       j.d_star_lo, j.d_star_hi, j.d_int90, j.baseline, j.estimator, j.model_label, j.dataset_label, j.yardstick,
       j.min_d
FROM j
LEFT JOIN success x ON x.suite = j.suite AND x.model = j.model AND x.model_params = j.model_params
     AND x.dataset = j.dataset AND x.dataset_params = j.dataset_params AND x.method = j.method
     AND x.params = j.params AND x.metric = j.metric AND x.epsilon = j.epsilon AND x.d = j.d_star;
