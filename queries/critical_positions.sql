-- critical_positions: where in the trajectory the critical step lies, for
-- `leafe report`.
--
-- The reflections of critical_steps in buckets of 10 steps of tau, with how
-- many of them a successful branch fixed.
--
-- @input critical_steps  The rows of critical_steps.sql, for the runs of the report.
--
-- Returns: tau_from (first step of the bucket), reflections, fixed.
--          Ordered by tau_from.
SELECT CAST(FLOOR(CAST(tau AS DOUBLE) / 10.0) * 10 AS BIGINT) AS tau_from,
       COUNT(*) AS reflections,
       SUM(CASE WHEN corrected_action IS NOT NULL THEN 1 ELSE 0 END) AS fixed
FROM critical_steps AS cs
GROUP BY 1
ORDER BY 1
