-- grpo_groups: GRPO sample groups with group-normalised advantages.
--
-- A group is the G samples of one task in one run (origin = 'grpo'). The
-- advantage of a sample is (r - group mean of r) / (group std of r + eps),
-- where r is the reward `reward` names, computed with window functions; groups
-- whose rewards are all equal (every sample failed, or every one succeeded)
-- get advantage 0.
--
-- @param run string = %      Run ids to include, as a SQL LIKE pattern (% for all).
-- @param eps float = 1e-6    Added to the standard deviation.
-- @param reward string = success  What is normalised: `success` (1 when the
--                             episode solved its task, else 0: GRPO's default) or
--                             `return` (the shaped episode return).
--
-- Returns: run_id, task_id, episode_id, sample_index, success, episode_return,
--          group_size, group_mean (of r), advantage. Ordered by run, task,
--          sample.
WITH scored AS (
    SELECT run_id, task_id, episode_id, sample_index, success, episode_return,
           CASE WHEN ${reward} = 'return' THEN episode_return
                ELSE CAST(CASE WHEN success THEN 1 ELSE 0 END AS DOUBLE) END AS r
    FROM episodes
    WHERE origin = 'grpo' AND run_id LIKE ${run}
)
SELECT run_id,
       task_id,
       episode_id,
       sample_index,
       success,
       episode_return,
       COUNT(*) OVER (PARTITION BY run_id, task_id) AS group_size,
       AVG(r) OVER (PARTITION BY run_id, task_id) AS group_mean,
       (r - AVG(r) OVER (PARTITION BY run_id, task_id))
         / (COALESCE(STDDEV_POP(r) OVER (PARTITION BY run_id, task_id), 0.0) + ${eps}) AS advantage
FROM scored
ORDER BY run_id, task_id, sample_index
