-- view_reflections: reflections, with the task and whether a branch from
-- them succeeded, for `leafe view`: those on one episode (the episode
-- page shows each at its tau) or those behind a row of the failure
-- patterns (a category, and optionally a critical action).
--
-- @param run string = %          Run ids, as a SQL LIKE pattern.
-- @param episode int = -1        The reflected episode (-1: any).
-- @param category string = any   The category (any: all).
-- @param action string = any     The critical action (any: all).
-- @param limit int = 200         At most this many rows.
--
-- Returns: run_id, reflection_id, episode_id, task_id, trigger_step, tau,
--          critical_action, category, diagnosis, fix, suggested_actions,
--          reflector, by_llm, llm_call_id, branches, fixed. Ordered by run,
--          reflection.
WITH branches AS (
    SELECT run_id,
           reflection_id,
           COUNT(*) AS branches,
           MAX(CASE WHEN success THEN 1 ELSE 0 END) AS fixed
    FROM episodes
    WHERE run_id LIKE ${run} AND reflection_id IS NOT NULL
      AND (${episode} = -1 OR parent_episode_id = ${episode})
    GROUP BY run_id, reflection_id
)
SELECT r.run_id,
       r.reflection_id,
       r.episode_id,
       e.task_id,
       r.trigger_step,
       r.rollback_step AS tau,
       r.critical_action_text AS critical_action,
       r.category,
       r.diagnosis,
       r.fix,
       r.suggested_actions,
       r.reflector,
       r.llm_call_id IS NOT NULL AS by_llm,
       r.llm_call_id,
       COALESCE(b.branches, 0) AS branches,
       COALESCE(b.fixed, 0) = 1 AS fixed
FROM reflections r
JOIN episodes e ON e.run_id = r.run_id AND e.episode_id = r.episode_id AND e.run_id LIKE ${run}
LEFT JOIN branches b ON b.run_id = r.run_id AND b.reflection_id = r.reflection_id
WHERE r.run_id LIKE ${run}
  AND (${episode} = -1 OR r.episode_id = ${episode})
  AND (${category} = 'any' OR r.category = ${category})
  AND (${action} = 'any' OR r.critical_action_text = ${action})
ORDER BY r.run_id, r.reflection_id
LIMIT ${limit}
