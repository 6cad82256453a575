-- export_preferences: the critical steps of reflections, with the history
-- that led to them, for `leafe export --dataset preference|critical`.
--
-- One example per reflection: the path of the reflected-on episode from the
-- task's start up to and including step tau (each ancestor's steps before
-- the child's rollback step, then the episode's own steps, t <= tau). The
-- row at t = tau holds the state where the mistake was made; `rejected` is
-- the critical action taken there, `chosen` the action the first successful
-- branch of this reflection took instead or, without one, the first action
-- the reflector suggested (`chosen_source` says which; NULL if neither).
--
-- Every scan of a table repeats the run filter: the engine does not carry it
-- across the joins of a CTE, and without it a query for one run would read
-- every run's rows in the store.
--
-- @param run string = %          Run ids to include, as a SQL LIKE pattern (% for all).
-- @param require_fix bool = true Only reflections with a successful branch.
-- @param from_example int = 0    Reflection ids from (inclusive): exports read a run in windows to bound memory.
-- @param to_example int = 9223372036854775807  Reflection ids below this.
--
-- Returns: run_id, task_id, example_id, tau, chosen, chosen_source, rejected,
--          experience, category, t, observation, action_text. Ordered by run, example, t.
WITH RECURSIVE fixes AS (
    SELECT e.run_id, e.reflection_id, s.action_text,
           ROW_NUMBER() OVER (PARTITION BY e.run_id, e.reflection_id ORDER BY e.episode_id) AS rank
    FROM episodes e
    JOIN steps s ON s.run_id = e.run_id AND s.episode_id = e.episode_id AND s.t = e.rollback_step
    WHERE e.origin = 'branch' AND e.success AND e.run_id LIKE ${run}
),
chosen AS (
    SELECT r.run_id, r.reflection_id, r.episode_id, r.rollback_step AS tau, r.critical_action_text,
           r.diagnosis || ' ' || r.fix AS experience, r.category,
           COALESCE(f.action_text, NULLIF(split_part(r.suggested_actions, ',', 1), '')) AS chosen,
           CASE WHEN f.action_text IS NOT NULL THEN 'branch'
                WHEN NULLIF(split_part(r.suggested_actions, ',', 1), '') IS NOT NULL THEN 'reflector' END AS chosen_source
    FROM reflections r
    LEFT JOIN fixes f ON f.run_id = r.run_id AND f.reflection_id = r.reflection_id AND f.rank = 1
    WHERE r.run_id LIKE ${run} AND (f.action_text IS NOT NULL OR NOT ${require_fix})
      AND r.reflection_id >= ${from_example} AND r.reflection_id < ${to_example}
),
path (run_id, reflection_id, episode_id, parent_episode_id, t_end, tau) AS (
    SELECT c.run_id, c.reflection_id, e.episode_id, e.parent_episode_id, c.tau + 1, COALESCE(e.rollback_step, 0)
    FROM chosen c
    JOIN episodes e ON e.run_id = c.run_id AND e.episode_id = c.episode_id AND e.run_id LIKE ${run}
    UNION ALL
    SELECT p.run_id, p.reflection_id, e.episode_id, e.parent_episode_id, p.tau, COALESCE(e.rollback_step, 0)
    FROM path p
    JOIN episodes e ON e.run_id = p.run_id AND e.episode_id = p.parent_episode_id AND e.run_id LIKE ${run}
)
SELECT p.run_id,
       ep.task_id,
       p.reflection_id AS example_id,
       c.tau,
       c.chosen,
       c.chosen_source,
       c.critical_action_text AS rejected,
       c.experience,
       c.category,
       s.t,
       s.observation,
       s.action_text
FROM path p
JOIN chosen c ON c.run_id = p.run_id AND c.reflection_id = p.reflection_id
JOIN episodes ep ON ep.run_id = c.run_id AND ep.episode_id = c.episode_id AND ep.run_id LIKE ${run}
JOIN steps s ON s.run_id = p.run_id AND s.episode_id = p.episode_id AND s.t < p.t_end AND s.run_id LIKE ${run}
ORDER BY p.run_id, p.reflection_id, s.t
