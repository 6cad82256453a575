-- export_runs: the runs `leafe export` reads, one query per run.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: run_id (runs with at least one episode). Ordered by run_id.
SELECT DISTINCT run_id
FROM episodes
WHERE run_id LIKE ${run}
ORDER BY run_id
