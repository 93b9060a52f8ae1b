-- Commit one change to one session, atomically: idempotency check, optimistic
-- revision check, state, visibility indexes, cursor, change log, publish.
-- Every key is in the session's account slot ({a:<account>}); what a commit
-- writes outside it (the owner claim, Twilio links) is written by the store
-- in single-key commands of the same round trip (see store.py).
--
-- KEYS[1] session hash          KEYS[2] account active set
-- KEYS[3] account seq counter   KEYS[4] account change log stream
-- KEYS[5] account epoch         KEYS[6] idempotency marker (or KEYS[1] if none)
-- KEYS[7] the node generation the epoch was started under (generation.lua)
-- KEYS[8..] endpoint index sets that change: the first ARGV[12] get the id, the rest lose it
--   (a session already active is in the active set and its unchanged endpoints' sets)
--
-- ARGV[1] expected revision     ARGV[2] SessionInfo JSON   ARGV[3] meta JSON
-- ARGV[4] 1 if active else 0    ARGV[5] change entry JSON  ARGV[6] epoch to use if none
-- ARGV[7] change log max length ARGV[8] idempotency TTL (s) ARGV[9] ended TTL (s)
-- ARGV[10] pub/sub channel      ARGV[11] session id        ARGV[12] endpoint adds
-- ARGV[13] 1 if KEYS[6] is an idempotency marker
-- ARGV[14] 1 if the session was active at the expected revision
-- ARGV[15] PUBLISH, or SPUBLISH on a Redis Cluster (sharded: only the slot's shard carries it)
-- ARGV[16] '', or the epoch a record this process kept was written under (store.py,
--   `_Known`: a commit from it, with no read): unless the account's log is still that
--   epoch on this node generation, {-2} and nothing written (Redis lost data: a revision
--   number may have been reused, and the keys outside this slot may be gone too)
--
-- Returns {1, cursor, epoch, rev} | {0} duplicate | {-2} another history (ARGV[16])
-- | {-1, current rev, info, meta} conflict: the record as it is now, so the caller's
-- retry needs no read of its own (the same read a read batch would have made).

if ARGV[13] == '1' and redis.call('EXISTS', KEYS[6]) == 1 then
  return {0}
end

local epoch = redis.call('GET', KEYS[5])
local gen = generation()
local fresh = not epoch or redis.call('GET', KEYS[7]) ~= gen
if ARGV[16] ~= '' and (fresh or epoch ~= ARGV[16]) then
  return {-2}
end

local current = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if current ~= tonumber(ARGV[1]) then
  local held = redis.call('HMGET', KEYS[1], 'info', 'meta')
  return {-1, current, held[1], held[2]}
end

local rev = current + 1
redis.call('HSET', KEYS[1], 'info', ARGV[2], 'meta', ARGV[3], 'rev', rev)

local sid = ARGV[11]
local was_active = ARGV[14] == '1'
if ARGV[4] == '1' then
  if not was_active then
    redis.call('SADD', KEYS[2], sid)
    redis.call('PERSIST', KEYS[1])
  end
else
  if was_active then
    redis.call('SREM', KEYS[2], sid)
  end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[9]))
end
local adds = tonumber(ARGV[12])
for i = 8, #KEYS do
  if i - 7 <= adds then
    redis.call('SADD', KEYS[i], sid)
  else
    redis.call('SREM', KEYS[i], sid)
  end
end

if fresh then
  epoch = ARGV[6]
  redis.call('SET', KEYS[5], epoch)
  redis.call('SET', KEYS[7], gen)
end
local cursor = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], cursor .. '-0', 'e', ARGV[5])
redis.call(ARGV[15], ARGV[10], epoch .. '\n' .. cursor .. '\n' .. ARGV[5])

if ARGV[13] == '1' then
  redis.call('SET', KEYS[6], '1', 'EX', tonumber(ARGV[8]))
end
return {1, cursor, epoch, rev}
