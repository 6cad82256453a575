-- view_tree: every episode of one task's trees in a run, for the tree page
-- of `leafe view`.
--
-- A node per episode (origin, outcome, length, environment steps, depth,
-- policy) and, for a branch, the reflection on its parent that it was
-- sampled under: the edge from the parent, leaving it at tau
-- (rollback_step), with the category, the critical action, the diagnosis,
-- the fix, the reflector and whether a language model wrote it.
--
-- @param run string = %  The run id.
-- @param task string = none  The task id.
-- @param max_nodes int = 2000  At most this many episodes (shallowest first).
--
-- Returns: episode_id, tree_id, parent_episode_id, reflection_id, tau,
--          depth, sample_index, origin, policy, experience_in_context,
--          success, status, episode_return, length, interaction_cost,
--          category, critical_action, trigger_step, diagnosis, fix,
--          reflector, by_llm. Ordered by depth, episode.
SELECT e.episode_id,
       e.tree_id,
       e.parent_episode_id,
       e.reflection_id,
       e.rollback_step AS tau,
       e.depth,
       e.sample_index,
       e.origin,
       e.policy,
       e.experience_in_context,
       e.success,
       e.status,
       e.episode_return,
       e.length,
       e.interaction_cost,
       r.category,
       r.critical_action_text AS critical_action,
       r.trigger_step,
       r.diagnosis,
       r.fix,
       r.reflector,
       r.llm_call_id IS NOT NULL AS by_llm
FROM episodes e
LEFT JOIN reflections r
  ON r.run_id = e.run_id AND r.reflection_id = e.reflection_id AND r.run_id = ${run}
WHERE e.run_id = ${run}
  AND e.task_id = ${task}
ORDER BY e.depth, e.episode_id
LIMIT ${max_nodes}
