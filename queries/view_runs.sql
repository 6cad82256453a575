-- view_runs: the runs page of `leafe view`, one row per committed run.
--
-- Each run with what it holds: tasks, episodes, steps (the episodes'
-- lengths, prefixes included), tasks solved, environment steps executed, and
-- its resolved configuration. Counts come from the episodes table only (one
-- row per rollout), so the page stays fast on stores of many million steps.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: run_id, kind, created_at, finished_at, seed, command_line,
--          leafe_version, config_json, tasks, solved_tasks, episodes,
--          successes, steps, env_steps. Newest first.
WITH per_task AS (
    SELECT run_id,
           task_id,
           COUNT(*) AS episodes,
           SUM(CASE WHEN success THEN 1 ELSE 0 END) AS successes,
           SUM(CAST(length AS BIGINT)) AS steps,
           SUM(interaction_cost) AS env_steps
    FROM episodes
    WHERE run_id LIKE ${run}
    GROUP BY run_id, task_id
),
per_run AS (
    SELECT run_id,
           COUNT(*) AS tasks,
           SUM(CASE WHEN successes > 0 THEN 1 ELSE 0 END) AS solved_tasks,
           SUM(episodes) AS episodes,
           SUM(successes) AS successes,
           SUM(steps) AS steps,
           SUM(env_steps) AS env_steps
    FROM per_task
    GROUP BY run_id
)
SELECT r.run_id,
       r.kind,
       r.created_at,
       r.finished_at,
       r.seed,
       r.command_line,
       r.leafe_version,
       r.config_json,
       COALESCE(p.tasks, 0) AS tasks,
       COALESCE(p.solved_tasks, 0) AS solved_tasks,
       COALESCE(p.episodes, 0) AS episodes,
       COALESCE(p.successes, 0) AS successes,
       COALESCE(p.steps, 0) AS steps,
       COALESCE(p.env_steps, 0) AS env_steps
FROM runs r
LEFT JOIN per_run p ON p.run_id = r.run_id
WHERE r.run_id LIKE ${run}
ORDER BY r.created_at DESC, r.run_id
