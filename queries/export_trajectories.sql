-- export_trajectories: successful trajectories, step by step, for `leafe export`.
--
-- One example per successful leaf episode (a root or a branch at depth >=
-- min_depth): its full path from the task's start — each ancestor's steps
-- before the next episode's rollback step, then the leaf's own steps; the
-- `ancestry` table holds that path, so it is one join. `tau` is the
-- leaf's rollback step (0 for a root): for counterfactual data the steps
-- before tau are the history (prompt) and the steps from tau the corrected
-- continuation (completion). `experience` is the leaf's reflection (NULL for
-- roots); exports leave it out of the model input.
--
-- Every scan of a table repeats the run filter, so that a query for one run
-- reads only that run's files whichever join order the engine picks.
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
SELECT leaf.run_id,
       leaf.task_id,
       leaf.episode_id AS example_id,
       leaf.origin,
       leaf.depth,
       COALESCE(leaf.rollback_step, 0) AS tau,
       CASE WHEN r.reflection_id IS NOT NULL THEN r.diagnosis || ' ' || r.fix END AS experience,
       r.category,
       s.t,
       s.observation,
       s.action_text,
       s.llm_call_id
FROM episodes leaf
JOIN ancestry a ON a.run_id = leaf.run_id AND a.episode_id = leaf.episode_id AND a.run_id LIKE ${run}
  AND a.episode_id >= ${from_example} AND a.episode_id < ${to_example}
JOIN steps s ON s.run_id = a.run_id AND s.episode_id = a.ancestor_episode_id AND s.t < a.end_step AND s.run_id LIKE ${run}
LEFT JOIN reflections r ON r.run_id = leaf.run_id AND r.reflection_id = leaf.reflection_id AND r.run_id LIKE ${run}
WHERE leaf.success AND leaf.origin IN ('root', 'branch') AND leaf.depth >= ${min_depth} AND leaf.run_id LIKE ${run}
  AND leaf.episode_id >= ${from_example} AND leaf.episode_id < ${to_example}
ORDER BY leaf.run_id, leaf.episode_id, s.t
