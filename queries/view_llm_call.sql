-- view_llm_call: the requests behind one language-model call (one row per
-- attempt), for the episode page of `leafe view`.
--
-- @param run string = %  The run id.
-- @param call int = -1  The call id (steps.llm_call_id, reflections.llm_call_id).
--
-- Returns: call_id, attempt, kind, model, seed, messages, completion,
--          parsed, valid, error, prompt_tokens, completion_tokens, log_prob,
--          latency_ms, retries, cached, created_at. Ordered by attempt.
SELECT call_id,
       attempt,
       kind,
       model,
       seed,
       messages,
       completion,
       parsed,
       valid,
       error,
       prompt_tokens,
       completion_tokens,
       log_prob,
       latency_ms,
       retries,
       cached,
       created_at
FROM llm_calls
WHERE run_id = ${run}
  AND call_id = ${call}
ORDER BY attempt
