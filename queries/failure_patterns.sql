-- failure_patterns: where and how agents fail, from the reflectors' verdicts.
--
-- One row per (mistake category, critical action): how many reflections named
-- it, where in the trajectory the critical step lies (absolute and relative to
-- the point where the reflection ran), and how often rolling back to it led
-- to at least one successful branch.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: category, critical_action, reflections, mean_tau, mean_relative_tau,
--          fixed_rate (share of these reflections with a successful branch).
WITH outcome AS (
    SELECT run_id, reflection_id, MAX(CASE WHEN success THEN 1.0 ELSE 0.0 END) AS fixed
    FROM episodes
    WHERE origin = 'branch' AND run_id LIKE ${run}
    GROUP BY run_id, reflection_id
)
SELECT r.category,
       r.critical_action_text AS critical_action,
       COUNT(*) AS reflections,
       ROUND(AVG(CAST(r.rollback_step AS DOUBLE)), 1) AS mean_tau,
       ROUND(AVG(CAST(r.rollback_step AS DOUBLE) / CAST(r.trigger_step + 1 AS DOUBLE)), 2) AS mean_relative_tau,
       ROUND(AVG(COALESCE(o.fixed, 0.0)), 3) AS fixed_rate
FROM reflections r
LEFT JOIN outcome o ON o.run_id = r.run_id AND o.reflection_id = r.reflection_id
WHERE r.run_id LIKE ${run}
GROUP BY r.category, r.critical_action_text
ORDER BY reflections DESC, r.category, critical_action
