-- grpo_steps: the training rows of a GRPO update — every step of every
-- sampled episode with the group-normalised advantage of its episode.
--
-- The advantage is computed exactly as in grpo_groups.sql: per (run, task)
-- group, (return - mean) / (std + eps), with window functions. The stored
-- log_prob is the behaviour policy's, for the clipped importance ratio.
--
-- @param run string = %      Run ids to include, as a SQL LIKE pattern (% for all).
-- @param eps float = 1e-6    Added to the standard deviation.
--
-- Returns: run_id, task_id, episode_id, t, observation, action, log_prob,
--          advantage. Ordered by run, episode, t.
WITH groups AS (
    SELECT run_id,
           episode_id,
           task_id,
           (episode_return - AVG(episode_return) OVER (PARTITION BY run_id, task_id))
             / (COALESCE(STDDEV_POP(episode_return) OVER (PARTITION BY run_id, task_id), 0.0) + ${eps}) AS advantage
    FROM episodes
    WHERE origin = 'grpo' AND run_id LIKE ${run}
)
SELECT g.run_id,
       g.task_id,
       g.episode_id,
       s.t,
       s.observation,
       s.action,
       s.log_prob,
       g.advantage
FROM groups g
JOIN steps s ON s.run_id = g.run_id AND s.episode_id = g.episode_id
ORDER BY g.run_id, g.episode_id, s.t
