-- Take or keep a lease: one holder at a time, until it expires.
--
-- KEYS[1] the lease key
-- ARGV[1] the taker's token (random per process)   ARGV[2] expiry in milliseconds
--
-- Returns 1 when the caller holds the lease now (taken, or already its own and
-- renewed), 0 when another holder has it.

local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
