-- view_training_marks: the steps of one task that `leafe train` trains on,
-- for the tree and episode pages of `leafe view`.
--
-- The rows of counterfactual_pairs.sql (a successful branch's corrected
-- steps, from tau on) and of rehearsal.sql (every step of every successful
-- path, tagged with its leaf) for the task. A rehearsal row names the leaf
-- episode and the step index on the leaf's full path; the step itself is
-- stored in the deepest episode of that path whose tau is at or before it.
--
-- @param run string = %  The run id (also bound as the inputs' `run` pattern).
-- @param task string = none  The task id.
-- @input counterfactual_pairs  LEAFE's distillation targets.
-- @input rehearsal             Behaviour rehearsal rows.
--
-- Returns: source (counterfactual | rehearsal), episode_id (for rehearsal:
--          the leaf), t. Ordered by source, episode, t.
SELECT 'counterfactual' AS source, episode_id, t
FROM counterfactual_pairs
WHERE run_id = ${run} AND task_id = ${task}
UNION ALL
SELECT 'rehearsal' AS source, leaf_episode_id AS episode_id, t
FROM rehearsal
WHERE run_id = ${run} AND task_id = ${task}
ORDER BY source, episode_id, t
