-- text_counterfactual_pairs: LEAFE's distillation targets for the text policy.
--
-- The same decisions as counterfactual_pairs.sql (every successful branch's
-- corrected steps, from the rollback step tau on), with what a text policy
-- reads of each: the branch's whole path from the root (through the
-- `ancestry` table), so that the episode's first observation and the recent
-- actions with their feedback can be rebuilt for every target step, and the
-- step's legal actions. Rows with `target` false are context only (the
-- path's prefix before tau). The experience summary is deliberately NOT
-- selected: the policy learns pi(a | h) without it.
--
-- @param run string = %      Run ids to include, as a SQL LIKE pattern (% for all).
-- @param min_depth int = 1   Shallowest branch depth to include.
--
-- Returns: run_id, task_id, leaf_episode_id, t, observation, action_text,
--          feedback, legal_actions, target. Ordered by run, leaf, t.
SELECT leaf.run_id,
       leaf.task_id,
       leaf.episode_id AS leaf_episode_id,
       s.t,
       s.observation,
       s.action_text,
       s.feedback,
       s.legal_actions,
       s.episode_id = leaf.episode_id AS target
FROM episodes leaf
JOIN ancestry a ON a.run_id = leaf.run_id AND a.episode_id = leaf.episode_id AND a.run_id LIKE ${run}
JOIN steps s ON s.run_id = a.run_id AND s.episode_id = a.ancestor_episode_id AND s.t < a.end_step AND s.run_id LIKE ${run}
WHERE leaf.origin = 'branch'
  AND leaf.success
  AND leaf.depth >= ${min_depth}
  AND leaf.run_id LIKE ${run}
ORDER BY leaf.run_id, leaf.episode_id, s.t
