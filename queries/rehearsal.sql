-- rehearsal: behaviour rehearsal rows — every step of every successful
-- trajectory, prefixes of successful branches included.
--
-- A successful branch's full path is its own steps plus each ancestor's
-- steps before the next episode's rollback step. The `ancestry` table holds
-- that path, one row per episode on it with the steps it keeps (t <
-- end_step), so the path is one join; each row is tagged with the
-- successful leaf it belongs to.
--
-- Every scan of a table repeats the run filter, so that a query for one run
-- reads only that run's files whichever join order the engine picks.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: run_id, task_id, leaf_episode_id, origin (of the leaf), t,
--          observation, action, action_text. Ordered by run, leaf, t.
SELECT leaf.run_id,
       leaf.task_id,
       leaf.episode_id AS leaf_episode_id,
       leaf.origin,
       s.t,
       s.observation,
       s.action,
       s.action_text
FROM episodes leaf
JOIN ancestry a ON a.run_id = leaf.run_id AND a.episode_id = leaf.episode_id AND a.run_id LIKE ${run}
JOIN steps s ON s.run_id = a.run_id AND s.episode_id = a.ancestor_episode_id AND s.t < a.end_step AND s.run_id LIKE ${run}
WHERE leaf.success AND leaf.origin IN ('root', 'branch') AND leaf.run_id LIKE ${run}
ORDER BY leaf.run_id, leaf.episode_id, s.t
