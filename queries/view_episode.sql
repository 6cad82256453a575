-- view_episode: one episode's row, for the episode page of `leafe view`.
--
-- The episode with its parent and, for a branch, the reflection it was
-- sampled under (the experience in its context).
--
-- @param run string = %  The run id.
-- @param episode int = -1  The episode id.
--
-- Returns: episode_id, tree_id, parent_episode_id, reflection_id, tau,
--          depth, sample_index, origin, task_id, task_source, split, policy,
--          experience_in_context, success, status, episode_return, length,
--          interaction_cost, created_at, category, critical_action,
--          diagnosis, fix, reflector.
SELECT e.episode_id,
       e.tree_id,
       e.parent_episode_id,
       e.reflection_id,
       e.rollback_step AS tau,
       e.depth,
       e.sample_index,
       e.origin,
       e.task_id,
       e.task_source,
       e.split,
       e.policy,
       e.experience_in_context,
       e.success,
       e.status,
       e.episode_return,
       e.length,
       e.interaction_cost,
       e.created_at,
       r.category,
       r.critical_action_text AS critical_action,
       r.diagnosis,
       r.fix,
       r.reflector
FROM episodes e
LEFT JOIN reflections r
  ON r.run_id = e.run_id AND r.reflection_id = e.reflection_id AND r.run_id = ${run}
WHERE e.run_id = ${run}
  AND e.episode_id = ${episode}
