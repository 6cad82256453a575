-- view_tasks: the tasks of one run, for the tasks page of `leafe view`.
--
-- One row per task: its episodes, deepest branch, steps, environment steps,
-- the reflection categories of its tree, and its outcome: `root` (an
-- episode that is not a branch solved it: the first attempt), `rollback`
-- (only a branch from a rollback solved it), `unsolved`, or `env_error`
-- (the environment failed an episode). Filters: outcome, a reflection
-- category, a minimum depth, and the tasks having an episode among
-- view_episode_filter's rows (where the page's free condition goes).
-- The server pages and sorts these rows.
--
-- @param run string = %            The run id.
-- @param outcome string = any    any, root, rollback, unsolved or env_error.
-- @param category string = any   Keep tasks with a reflection of this category (any: all).
-- @param min_depth int = 0       Keep tasks whose tree reaches this depth.
-- @input view_episode_filter     The run's episodes that pass the free condition.
--
-- Returns: task_id, outcome, episodes, branches, max_depth, steps, env_steps,
--          reflections, categories (how many distinct), first_category
--          (alphabetically), split, task_source, first_episode_id.
WITH per_task AS (
    SELECT task_id,
           COUNT(*) AS episodes,
           SUM(CASE WHEN origin = 'branch' THEN 1 ELSE 0 END) AS branches,
           MAX(depth) AS max_depth,
           SUM(CAST(length AS BIGINT)) AS steps,
           SUM(interaction_cost) AS env_steps,
           MAX(CASE WHEN origin <> 'branch' AND success THEN 1 ELSE 0 END) AS solved_first,
           MAX(CASE WHEN success THEN 1 ELSE 0 END) AS solved,
           MAX(CASE WHEN status = 'env_error' THEN 1 ELSE 0 END) AS env_error,
           MIN(split) AS split,
           MIN(task_source) AS task_source,
           MIN(episode_id) AS first_episode_id
    FROM episodes
    WHERE run_id = ${run}
    GROUP BY task_id
),
task_reflections AS (
    SELECT e.task_id, r.category
    FROM reflections r
    JOIN episodes e ON e.run_id = r.run_id AND e.episode_id = r.episode_id AND e.run_id = ${run}
    WHERE r.run_id = ${run}
),
-- Distinct categories counted from distinct pairs: COUNT(DISTINCT …) per
-- group is the slow form of the same number.
category_counts AS (
    SELECT task_id, COUNT(*) AS categories
    FROM (SELECT DISTINCT task_id, category FROM task_reflections WHERE category IS NOT NULL) AS d
    GROUP BY task_id
),
cats AS (
    SELECT t.task_id,
           COUNT(*) AS reflections,
           COALESCE(MAX(n.categories), 0) AS categories,
           MIN(t.category) AS first_category,
           MAX(CASE WHEN t.category = ${category} THEN 1 ELSE 0 END) AS has_category
    FROM task_reflections t
    LEFT JOIN category_counts n ON n.task_id = t.task_id
    GROUP BY t.task_id
),
classified AS (
    SELECT t.task_id,
           CASE WHEN t.env_error = 1 THEN 'env_error'
                WHEN t.solved_first = 1 THEN 'root'
                WHEN t.solved = 1 THEN 'rollback'
                ELSE 'unsolved' END AS outcome,
           t.episodes,
           t.branches,
           t.max_depth,
           t.steps,
           t.env_steps,
           COALESCE(c.reflections, 0) AS reflections,
           COALESCE(c.categories, 0) AS categories,
           c.first_category,
           COALESCE(c.has_category, 0) AS has_category,
           t.split,
           t.task_source,
           t.first_episode_id
    FROM per_task t
    LEFT JOIN cats c ON c.task_id = t.task_id
)
SELECT task_id, outcome, episodes, branches, max_depth, steps, env_steps,
       reflections, categories, first_category, split, task_source, first_episode_id
FROM classified
WHERE (${outcome} = 'any' OR outcome = ${outcome})
  AND (${category} = 'any' OR has_category = 1)
  AND max_depth >= ${min_depth}
  AND task_id IN (SELECT task_id FROM view_episode_filter)
