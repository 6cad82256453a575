-- pairs_by_depth: counterfactual training pairs per tree depth — what
-- Stage 2 distils, as `leafe demo` shows it.
--
-- A pair is one step of a successful branch (a branch stores only its own
-- steps, from its rollback step on).
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: depth, pairs, trees (trees with at least one such pair).
--          Ordered by depth.
SELECT e.depth,
       COUNT(*) AS pairs,
       COUNT(DISTINCT e.tree_id) AS trees
FROM episodes e
JOIN steps s ON s.run_id = e.run_id AND s.episode_id = e.episode_id
WHERE e.origin = 'branch' AND e.success AND e.run_id LIKE ${run}
GROUP BY e.depth
ORDER BY e.depth
