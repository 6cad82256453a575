-- grpo_steps: the training rows of a GRPO update — every step of every
-- sampled episode with the group-normalised advantage of its episode.
--
-- The advantage is computed exactly as in grpo_groups.sql: per (run, task)
-- group, (r - mean) / (std + eps) of the reward r that `reward` names, with
-- window functions. The stored
-- log_prob is the behaviour policy's, for the clipped importance ratio.
--
-- Every scan of a table repeats the run filter: the engine does not carry it
-- across the joins of a CTE, and without it a query for one run would read
-- every run's rows in the store.
--
-- @param run string = %      Run ids to include, as a SQL LIKE pattern (% for all).
-- @param eps float = 1e-6    Added to the standard deviation.
-- @param reward string = success  What is normalised: `success` (1 when the
--                             episode solved its task, else 0: GRPO's default) or
--                             `return` (the shaped episode return).
--
-- Returns: run_id, task_id, episode_id, t, observation, action, log_prob,
--          advantage, action_text, feedback, legal_actions (what the text
--          policy rebuilds its context from). Ordered by run, episode, t.
WITH scored AS (
    SELECT run_id, episode_id, task_id,
           CASE WHEN ${reward} = 'return' THEN episode_return
                ELSE CAST(CASE WHEN success THEN 1 ELSE 0 END AS DOUBLE) END AS r
    FROM episodes
    WHERE origin = 'grpo' AND run_id LIKE ${run}
),
groups AS (
    SELECT run_id,
           episode_id,
           task_id,
           (r - AVG(r) OVER (PARTITION BY run_id, task_id))
             / (COALESCE(STDDEV_POP(r) OVER (PARTITION BY run_id, task_id), 0.0) + ${eps}) AS advantage
    FROM scored
)
SELECT g.run_id,
       g.task_id,
       g.episode_id,
       s.t,
       s.observation,
       s.action,
       s.log_prob,
       g.advantage,
       s.action_text,
       s.feedback,
       s.legal_actions
FROM groups g
JOIN steps s ON s.run_id = g.run_id AND s.episode_id = g.episode_id AND s.run_id LIKE ${run}
ORDER BY g.run_id, g.episode_id, s.t
