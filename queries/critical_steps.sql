-- critical_steps: every reflection's critical step, with the fix that worked.
--
-- For each reflection: the state at tau (the first stored step of any branch
-- of this reflection restarts from exactly that state), the critical action,
-- the category and diagnosis, and — if one of its branches succeeded — the
-- action that branch took at tau instead.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: run_id, reflection_id, tree_id, episode_id, tau, state_at_tau,
--          critical_action, category, diagnosis, fix, corrected_action,
--          corrected_episode_id. Ordered by run, reflection.
WITH first_steps AS (
    SELECT e.run_id, e.reflection_id, e.episode_id, e.success, s.observation, s.action_text,
           ROW_NUMBER() OVER (PARTITION BY e.run_id, e.reflection_id ORDER BY e.success DESC, e.episode_id) AS rank
    FROM episodes e
    JOIN steps s ON s.run_id = e.run_id AND s.episode_id = e.episode_id AND s.t = e.rollback_step
    WHERE e.origin = 'branch' AND e.run_id LIKE ${run}
)
SELECT r.run_id,
       r.reflection_id,
       r.tree_id,
       r.episode_id,
       r.rollback_step AS tau,
       f.observation AS state_at_tau,
       r.critical_action_text AS critical_action,
       r.category,
       r.diagnosis,
       r.fix,
       CASE WHEN f.success THEN f.action_text END AS corrected_action,
       CASE WHEN f.success THEN f.episode_id END AS corrected_episode_id
FROM reflections r
LEFT JOIN first_steps f ON f.run_id = r.run_id AND f.reflection_id = r.reflection_id AND f.rank = 1
WHERE r.run_id LIKE ${run}
ORDER BY r.run_id, r.reflection_id
