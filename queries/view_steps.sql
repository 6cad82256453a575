-- view_steps: a page of one episode's own steps, for the episode page of
-- `leafe view` (a branch stores its steps from tau on; its prefix is its
-- parent's).
--
-- @param run string = %  The run id.
-- @param episode int = -1  The episode id.
-- @param from_t int = 0   The first step index of the page.
-- @param limit int = 200  At most this many steps.
--
-- Returns: t, observation, action, action_text, reward, done, feedback,
--          mistake, log_prob, experience_in_context, llm_call_id. Ordered by t.
SELECT t,
       observation,
       action,
       action_text,
       reward,
       done,
       feedback,
       mistake,
       log_prob,
       experience_in_context,
       llm_call_id
FROM steps
WHERE run_id = ${run}
  AND episode_id = ${episode}
  AND t >= ${from_t}
ORDER BY t
LIMIT ${limit}
