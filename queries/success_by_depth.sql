-- success_by_depth: how exploration pays off down the tree.
--
-- One row per (origin, depth): episodes, their success rate, the environment
-- steps they executed, and how many ran with the experience in context.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: origin, depth, episodes, success_rate, env_steps, with_experience.
SELECT origin,
       depth,
       COUNT(*) AS episodes,
       ROUND(AVG(CASE WHEN success THEN 1.0 ELSE 0.0 END), 3) AS success_rate,
       CAST(SUM(interaction_cost) AS BIGINT) AS env_steps,
       SUM(CASE WHEN experience_in_context THEN 1 ELSE 0 END) AS with_experience
FROM episodes
WHERE origin IN ('root', 'branch') AND run_id LIKE ${run}
GROUP BY origin, depth
ORDER BY depth, origin
