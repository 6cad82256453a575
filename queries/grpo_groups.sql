-- grpo_groups: GRPO sample groups with group-normalised advantages.
--
-- A group is the G samples of one task in one run (origin = 'grpo'). The
-- advantage of a sample is (return - group mean) / (group std + eps), computed
-- with window functions; groups whose returns are all equal get advantage 0.
--
-- @param run string = %      Run ids to include, as a SQL LIKE pattern (% for all).
-- @param eps float = 1e-6    Added to the standard deviation.
--
-- Returns: run_id, task_id, episode_id, sample_index, success, episode_return,
--          group_size, group_mean, advantage. Ordered by run, task, sample.
SELECT run_id,
       task_id,
       episode_id,
       sample_index,
       success,
       episode_return,
       COUNT(*) OVER (PARTITION BY run_id, task_id) AS group_size,
       AVG(episode_return) OVER (PARTITION BY run_id, task_id) AS group_mean,
       (episode_return - AVG(episode_return) OVER (PARTITION BY run_id, task_id))
         / (COALESCE(STDDEV_POP(episode_return) OVER (PARTITION BY run_id, task_id), 0.0) + ${eps}) AS advantage
FROM episodes
WHERE origin = 'grpo' AND run_id LIKE ${run}
ORDER BY run_id, task_id, sample_index
