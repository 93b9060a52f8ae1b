-- Read one view (a set of active session ids) with the cursor it is current at,
-- atomically, so a snapshot and its cursor always agree. Starts the account's
-- epoch if it has none (with the node generation, see generation.lua).
--
-- KEYS[1] index set (account active set, or one endpoint's set)
-- KEYS[2] account seq counter   KEYS[3] account epoch   KEYS[4] the epoch's node generation
-- ARGV[1] session key prefix (the sessions' keys are in the same slot)
-- ARGV[2] epoch to use if none
--
-- Returns {epoch, cursor, info JSON...}.

if redis.call('SET', KEYS[3], ARGV[2], 'NX') then
  redis.call('SET', KEYS[4], generation())
end
local out = {redis.call('GET', KEYS[3]), redis.call('GET', KEYS[2]) or '0'}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('HGET', ARGV[1] .. sid, 'info')
  if info then
    out[#out + 1] = info
  end
end
return out
