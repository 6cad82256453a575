-- counterfactual_pairs: LEAFE's distillation targets.
--
-- For every branch that ended in success, its corrected continuation from the
-- rollback step tau onwards: the state the agent saw and the action it took.
-- A branch stores only its own steps (t >= tau), so the join yields exactly the
-- corrected part. The experience summary is deliberately NOT selected: the
-- model is trained on pi(a | h) without it (counterfactual distillation).
--
-- @param run string = %      Run ids to include, as a SQL LIKE pattern (% for all).
-- @param min_depth int = 1   Shallowest branch depth to include.
--
-- Returns: run_id, task_id, tree_id, episode_id, reflection_id, depth, tau, t,
--          observation, action, action_text. Ordered by run, episode, t.
SELECT e.run_id,
       e.task_id,
       e.tree_id,
       e.episode_id,
       e.reflection_id,
       e.depth,
       e.rollback_step AS tau,
       s.t,
       s.observation,
       s.action,
       s.action_text
FROM episodes e
JOIN steps s ON s.run_id = e.run_id AND s.episode_id = e.episode_id
WHERE e.origin = 'branch'
  AND e.success
  AND e.depth >= ${min_depth}
  AND e.run_id LIKE ${run}
ORDER BY e.run_id, e.episode_id, s.t
