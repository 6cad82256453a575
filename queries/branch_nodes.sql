-- branch_nodes: the branch nodes of every tree, with their parent and the
-- reflection that spawned them.
--
-- @param run string = %  Run ids to include, as a SQL LIKE pattern (% for all).
--
-- Returns: run_id, tree_id, episode_id, parent_episode_id, depth, tau,
--          success, parent_success, category. Ordered by run, tree, episode.
SELECT b.run_id,
       b.tree_id,
       b.episode_id,
       b.parent_episode_id,
       b.depth,
       b.rollback_step AS tau,
       b.success,
       p.success AS parent_success,
       r.category
FROM episodes b
JOIN episodes p ON p.run_id = b.run_id AND p.episode_id = b.parent_episode_id
LEFT JOIN reflections r ON r.run_id = b.run_id AND r.reflection_id = b.reflection_id
WHERE b.parent_episode_id IS NOT NULL AND b.run_id LIKE ${run}
ORDER BY b.run_id, b.tree_id, b.episode_id
