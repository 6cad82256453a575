-- text_rehearsal: rehearsal rows for the text policy.
--
-- The same decisions as rehearsal.sql (every step of every successful
-- trajectory, prefixes of successful branches included, tagged with the
-- successful leaf), with the feedback and the legal actions of each step,
-- so that what a text policy reads (the first observation, the recent
-- actions with their feedback, the observation, the legal actions) can be
-- rebuilt. Every row is a target.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
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
       TRUE AS target
FROM episodes leaf
JOIN ancestry a ON a.run_id = leaf.run_id AND a.episode_id = leaf.episode_id AND a.run_id LIKE ${run}
JOIN steps s ON s.run_id = a.run_id AND s.episode_id = a.ancestor_episode_id AND s.t < a.end_step AND s.run_id LIKE ${run}
WHERE leaf.success AND leaf.origin IN ('root', 'branch') AND leaf.run_id LIKE ${run}
ORDER BY leaf.run_id, leaf.episode_id, s.t
