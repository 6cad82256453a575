-- export_preferences: the critical steps of reflections, with the history
-- that led to them, for `leafe export --dataset preference|critical`.
--
-- One example per reflection: the path of the reflected-on episode from the
-- task's start up to and including step tau (each ancestor's steps before
-- the next episode's rollback step, then the episode's own steps, t <= tau;
-- the `ancestry` table holds that path, so it is one join). The
-- row at t = tau holds the state where the mistake was made; `rejected` is
-- the critical action taken there, `chosen` the action the first successful
-- branch of this reflection took instead or, without one, the first action
-- the reflector suggested (`chosen_source` says which; NULL if neither).
--
-- Every scan of a table repeats the run filter, so that a query for one run
-- reads only that run's files whichever join order the engine picks.
--
-- @param run string = %          Run ids to include, as a SQL LIKE pattern (% for all).
-- @param require_fix bool = true Only reflections with a successful branch.
-- @param from_example int = 0    Reflection ids from (inclusive): exports read a run in windows to bound memory.
-- @param to_example int = 9223372036854775807  Reflection ids below this.
--
-- Returns: run_id, task_id, example_id, tau, chosen, chosen_source, rejected,
--          experience, category, t, observation, action_text. Ordered by run, example, t.
WITH fixes AS (
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
)
SELECT c.run_id,
       ep.task_id,
       c.reflection_id AS example_id,
       c.tau,
       c.chosen,
       c.chosen_source,
       c.critical_action_text AS rejected,
       c.experience,
       c.category,
       s.t,
       s.observation,
       s.action_text
FROM chosen c
JOIN episodes ep ON ep.run_id = c.run_id AND ep.episode_id = c.episode_id AND ep.run_id LIKE ${run}
JOIN ancestry a ON a.run_id = c.run_id AND a.episode_id = c.episode_id AND a.run_id LIKE ${run}
JOIN steps s ON s.run_id = a.run_id AND s.episode_id = a.ancestor_episode_id AND s.run_id LIKE ${run}
  AND s.t < CASE WHEN a.ancestor_episode_id = a.episode_id THEN c.tau + 1 ELSE a.end_step END
ORDER BY c.run_id, c.reflection_id, s.t
