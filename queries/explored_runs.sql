-- explored_runs: the runs holding exploration episodes (roots and branches),
-- which incremental training (`leafe train --incremental`) checks against its
-- watermark.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: run_id. Ordered by run_id.
SELECT DISTINCT run_id
FROM episodes
WHERE run_id LIKE ${run} AND origin IN ('root', 'branch')
ORDER BY run_id
