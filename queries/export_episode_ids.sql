-- export_episode_ids: the id range of a run's candidate examples for the
-- trajectory exports (counterfactual, rehearsal), which `leafe export`
-- splits into windows of about equal size.
--
-- Candidates are the successful root and branch episodes of the run.
--
-- @param run string = %  The run id (exact, not a pattern).
--
-- Returns: one row: first_id, last_id (NULL when there is none), examples.
SELECT MIN(episode_id) AS first_id,
       MAX(episode_id) AS last_id,
       COUNT(*) AS examples
FROM episodes
WHERE run_id = ${run} AND success AND origin IN ('root', 'branch')
