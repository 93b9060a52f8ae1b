-- Prepended to every script that may start an account's epoch (store.py).
-- The node's replication id: Redis gives a node a new one whenever its data may
-- no longer be the history it had (a restart that replayed an AOF or RDB, a
-- replica promoted to master), and keeps it while the history is continuous.
-- An account's epoch records the id it was written under; a commit under another
-- id starts a new epoch, so a cursor is never reused with different content.
-- The embedded store has no INFO: '' (it lives and dies with its process).
local function generation()
  local ok, info = pcall(redis.call, 'INFO', 'replication')
  if ok and type(info) == 'string' then
    return string.match(info, 'master_replid:(%w+)') or ''
  end
  return ''
end

