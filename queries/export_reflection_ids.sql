-- export_reflection_ids: the id range of a run's candidate examples for the
-- reflection exports (critical, preference), which `leafe export` splits
-- into windows of about equal size.
--
-- Candidates are the reflections of the run.
--
-- @param run string = %  The run id (exact, not a pattern).
--
-- Returns: one row: first_id, last_id (NULL when there is none), examples.
SELECT MIN(reflection_id) AS first_id,
       MAX(reflection_id) AS last_id,
       COUNT(*) AS examples
FROM reflections
WHERE run_id = ${run}
