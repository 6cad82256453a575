-- view_episode_filter: the episodes of one run that the tasks page's free
-- condition is applied to.
--
-- `leafe view` wraps these rows in the condition a user types on the tasks
-- page (a boolean expression over episode columns, e.g. `depth >= 2 AND NOT
-- success`) and registers the result under this name; view_tasks.sql keeps
-- the tasks with at least one such episode. Without a condition, every
-- episode of the run.
--
-- @param run string = %  The run id.
--
-- Returns: every column of episodes, for the run's episodes.
SELECT *
FROM episodes
WHERE run_id = ${run}
