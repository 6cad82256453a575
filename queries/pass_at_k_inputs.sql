-- pass_at_k_inputs: per policy, split and task, the number of evaluation
-- samples n and successes c — the inputs of the unbiased Pass@k estimator
-- 1 - C(n-c, k) / C(n, k).
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: policy, split, task_id, n, c. Ordered by policy, split, task.
SELECT policy,
       COALESCE(split, '') AS split,
       task_id,
       COUNT(*) AS n,
       SUM(CASE WHEN success THEN 1 ELSE 0 END) AS c
FROM episodes
WHERE origin = 'eval' AND run_id LIKE ${run}
GROUP BY policy, COALESCE(split, ''), task_id
ORDER BY policy, split, task_id
