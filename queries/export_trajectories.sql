-- export_trajectories: successful trajectories, step by step, for `leafe export`.
--
-- One example per successful leaf episode (a root or a branch at depth >=
-- min_depth): its full path from the task's start — each ancestor's steps
-- before the child's rollback step, then the leaf's own steps. `tau` is the
-- leaf's rollback step (0 for a root): for counterfactual data the steps
-- before tau are the history (prompt) and the steps from tau the corrected
-- continuation (completion). `experience` is the leaf's reflection (NULL for
-- roots); exports leave it out of the model input.
--
-- Every scan of a table repeats the run filter: the engine does not carry it
-- across the joins of a CTE, and without it a query for one run would read
-- every run's rows in the store.
--
-- @param run string = %        Run ids to include, as a SQL LIKE pattern (% for all).
-- @param min_depth int = 1     Shallowest leaf depth (1: branches only = counterfactual; 0: roots too = rehearsal).
-- @param from_example int = 0  Leaf episode ids from (inclusive): exports read a run in windows to bound memory.
-- @param to_example int = 9223372036854775807  Leaf episode ids below this.
--
-- Returns: run_id, task_id, example_id, origin, depth, tau, experience,
--          category, t, observation, action_text, llm_call_id (the model
--          request that chose the action, for an LLM policy: exports
--          reproduce its messages). Ordered by run, example, t.
WITH RECURSIVE path (run_id, leaf_episode_id, episode_id, parent_episode_id, t_end, tau) AS (
    SELECT run_id, episode_id AS leaf_episode_id, episode_id, parent_episode_id, length AS t_end, COALESCE(rollback_step, 0) AS tau
    FROM episodes
    WHERE success AND origin IN ('root', 'branch') AND depth >= ${min_depth} AND run_id LIKE ${run}
      AND episode_id >= ${from_example} AND episode_id < ${to_example}
    UNION ALL
    SELECT p.run_id, p.leaf_episode_id, e.episode_id, e.parent_episode_id, p.tau, COALESCE(e.rollback_step, 0)
    FROM path p
    JOIN episodes e ON e.run_id = p.run_id AND e.episode_id = p.parent_episode_id AND e.run_id LIKE ${run}
)
SELECT p.run_id,
       leaf.task_id,
       p.leaf_episode_id AS example_id,
       leaf.origin,
       leaf.depth,
       COALESCE(leaf.rollback_step, 0) AS tau,
       CASE WHEN r.reflection_id IS NOT NULL THEN r.diagnosis || ' ' || r.fix END AS experience,
       r.category,
       s.t,
       s.observation,
       s.action_text,
       s.llm_call_id
FROM path p
JOIN steps s ON s.run_id = p.run_id AND s.episode_id = p.episode_id AND s.t < p.t_end AND s.run_id LIKE ${run}
JOIN episodes leaf ON leaf.run_id = p.run_id AND leaf.episode_id = p.leaf_episode_id AND leaf.run_id LIKE ${run}
LEFT JOIN reflections r ON r.run_id = leaf.run_id AND r.reflection_id = leaf.reflection_id AND r.run_id LIKE ${run}
ORDER BY p.run_id, p.leaf_episode_id, s.t
