-- failure_categories: mistakes by category, the first table of `leafe report`.
--
-- Totals of failure_patterns over its critical actions: how many reflections
-- named each category, the share of them whose rollback led to a successful
-- branch, and the mean rollback step, both weighted by reflections.
--
-- @input failure_patterns  The rows of failure_patterns.sql, for the runs of the report.
--
-- Returns: category, reflections, fixed_rate, mean_tau. Ordered by
--          reflections (most first), category.
SELECT category,
       CAST(SUM(reflections) AS BIGINT) AS reflections,
       ROUND(SUM(fixed_rate * reflections) / SUM(reflections), 3) AS fixed_rate,
       ROUND(SUM(mean_tau * reflections) / SUM(reflections), 1) AS mean_tau
FROM failure_patterns AS fp
GROUP BY category
ORDER BY reflections DESC, category
