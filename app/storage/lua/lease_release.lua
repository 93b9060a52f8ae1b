-- Give a lease up, only if the caller still holds it (it may have expired and
-- been taken by another since).
--
-- KEYS[1] the lease key   ARGV[1] the holder's token
--
-- Returns 1 when released, 0 when the caller did not hold it.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
