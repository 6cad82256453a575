-- interaction_cost: what runs spent in the environment and what they solved.
--
-- The environment steps of every episode (`interaction_cost`) summed: the
-- interaction budget GRPO gets to match LEAFE's exploration, and the cost
-- column of the experiment's table, with the tasks tried and solved.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: one row: tasks (distinct tasks), solved (tasks with a successful
--          episode), steps (environment steps, 0 without episodes).
SELECT COUNT(DISTINCT task_id) AS tasks,
       COUNT(DISTINCT CASE WHEN success THEN task_id END) AS solved,
       CAST(COALESCE(SUM(interaction_cost), 0) AS BIGINT) AS steps
FROM episodes
WHERE run_id LIKE ${run}
