-- rehearsal: behaviour rehearsal rows — every step of every successful
-- trajectory, prefixes of successful branches included.
--
-- A successful branch's full path is its own steps plus, walking up the tree,
-- each ancestor's steps before the child's rollback step. The recursive CTE
-- does that walk; each row is tagged with the successful leaf it belongs to.
--
-- Every scan of a table repeats the run filter: the engine does not carry it
-- across the joins of a CTE, and without it a query for one run would read
-- every run's rows in the store.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: run_id, task_id, leaf_episode_id, origin (of the leaf), t,
--          observation, action, action_text. Ordered by run, leaf, t.
WITH RECURSIVE path (run_id, leaf_episode_id, episode_id, parent_episode_id, t_end, tau) AS (
    SELECT run_id, episode_id AS leaf_episode_id, episode_id, parent_episode_id, length AS t_end, COALESCE(rollback_step, 0) AS tau
    FROM episodes
    WHERE success AND origin IN ('root', 'branch') AND run_id LIKE ${run}
    UNION ALL
    SELECT p.run_id, p.leaf_episode_id, e.episode_id, e.parent_episode_id, p.tau, COALESCE(e.rollback_step, 0)
    FROM path p
    JOIN episodes e ON e.run_id = p.run_id AND e.episode_id = p.parent_episode_id AND e.run_id LIKE ${run}
)
SELECT p.run_id,
       leaf.task_id,
       p.leaf_episode_id,
       leaf.origin,
       s.t,
       s.observation,
       s.action,
       s.action_text
FROM path p
JOIN steps s ON s.run_id = p.run_id AND s.episode_id = p.episode_id AND s.t < p.t_end AND s.run_id LIKE ${run}
JOIN episodes leaf ON leaf.run_id = p.run_id AND leaf.episode_id = p.leaf_episode_id AND leaf.run_id LIKE ${run}
ORDER BY p.run_id, p.leaf_episode_id, s.t
