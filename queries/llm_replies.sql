-- llm_replies: the recorded replies of the store's model calls — the replay
-- cache of `--llm-replay cache|only`.
--
-- A request with the same key (the hash of its whole body: model, messages,
-- sampling settings, seed) is answered with the reply recorded first.
--
-- @param run string = %    Run ids to include, as a SQL LIKE pattern (% for all).
-- @param model string = %  Model names to include, as a SQL LIKE pattern.
--
-- Returns: request_key, response (the server's reply body as JSON), one row
--          per call that got a reply, earliest first.
SELECT request_key, response
FROM llm_calls
WHERE response IS NOT NULL
  AND run_id LIKE ${run}
  AND model LIKE ${model}
ORDER BY created_at, run_id, call_id
