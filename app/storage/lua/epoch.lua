-- The account's epoch, started if it has none (with the node generation, see
-- generation.lua), and its cursor: the position its change log is at.
--
-- KEYS[1] account epoch   KEYS[2] the epoch's node generation   KEYS[3] account seq counter
-- ARGV[1] epoch to use if none
--
-- Returns {epoch, cursor}.

local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('SET', KEYS[2], generation())
end
return {epoch, redis.call('GET', KEYS[3]) or '0'}
