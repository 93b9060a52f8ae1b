-- Agent presence of one account, atomically: leases of live connections, which
-- endpoints they make present, and a publication on the account's live channel
-- for every endpoint that joins or leaves. Every key is in the account's slot.
-- Atomic per account, so any number of processes may sweep at once: a lease is
-- removed, and its leave published, by exactly one of them.
--
-- KEYS[1] leases: sorted set, connection id -> expiry (Unix ms)
-- KEYS[2] connections: hash, connection id -> endpoint id
-- KEYS[3] counts: hash, endpoint id -> live connections
-- KEYS[4] entries: hash, endpoint id -> entry JSON
-- KEYS[5] version: counter of the account's presence changes
--
-- ARGV[1] verb: join | leave | tick | read
-- ARGV[2] PUBLISH, or SPUBLISH on a Redis Cluster     ARGV[3] the account's live channel
-- ARGV[4] now (Unix ms): leases at or before it have run out (swept by tick and read)
-- ARGV[5] expiry (Unix ms) for leases made or renewed now
-- join:  ARGV[6] connection id, ARGV[7] endpoint id, ARGV[8] entry JSON
-- leave: ARGV[6..] connection ids that ended
-- tick:  ARGV[6] n, ARGV[7..6+n] connection ids to renew, ARGV[7+n..] connection ids that
--        ended since the last tick (left first); then sweeps
-- read:  sweeps, then reads
--
-- Publishes `presence\n<version>\n<join|leave>\n<entry JSON>`.
-- Returns {version} (join, leave); {version, missing id...} (tick: the ids it could not
-- renew, their lease gone: the caller joins them again); {version, endpoint, count, entry, ...} (read).

local SWEEP_LIMIT = 1000

local function publish(kind, entry)
  local version = redis.call('INCR', KEYS[5])
  redis.call(ARGV[2], ARGV[3], 'presence\n' .. version .. '\n' .. kind .. '\n' .. entry)
end

local function drop(conn)
  if redis.call('ZREM', KEYS[1], conn) == 0 then
    return
  end
  local endpoint = redis.call('HGET', KEYS[2], conn)
  redis.call('HDEL', KEYS[2], conn)
  if not endpoint then
    return
  end
  if redis.call('HINCRBY', KEYS[3], endpoint, -1) <= 0 then
    redis.call('HDEL', KEYS[3], endpoint)
    local entry = redis.call('HGET', KEYS[4], endpoint)
    redis.call('HDEL', KEYS[4], endpoint)
    if entry then
      publish('leave', entry)
    end
  end
end

local function sweep()
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0, SWEEP_LIMIT)
  for _, conn in ipairs(expired) do
    drop(conn)
  end
end

local function version()
  return tonumber(redis.call('GET', KEYS[5]) or '0')
end

local verb = ARGV[1]
if verb == 'join' then
  local conn, endpoint = ARGV[6], ARGV[7]
  if redis.call('ZADD', KEYS[1], ARGV[5], conn) == 1 then  -- a new lease (else: renewed)
    redis.call('HSET', KEYS[2], conn, endpoint)
    if redis.call('HINCRBY', KEYS[3], endpoint, 1) == 1 then
      redis.call('HSET', KEYS[4], endpoint, ARGV[8])
      publish('join', ARGV[8])
    end
  end
  return {version()}
elseif verb == 'leave' then
  for i = 6, #ARGV do
    drop(ARGV[i])
  end
  return {version()}
elseif verb == 'tick' then
  local n = tonumber(ARGV[6])
  for i = 7 + n, #ARGV do
    drop(ARGV[i])
  end
  -- Renew in chunks (one ZMSCORE and one ZADD XX per chunk, not a command per lease); a lease
  -- already gone (swept: this process was paused past it) is missing, for the caller to join again.
  local missing = {}
  local CHUNK = 500
  for first = 7, 6 + n, CHUNK do
    local last = math.min(first + CHUNK - 1, 6 + n)
    local ids = {}
    for i = first, last do
      ids[#ids + 1] = ARGV[i]
    end
    local scores = redis.call('ZMSCORE', KEYS[1], unpack(ids))
    local renew = {}
    for j, id in ipairs(ids) do
      if scores[j] then
        renew[#renew + 1] = ARGV[5]
        renew[#renew + 1] = id
      else
        missing[#missing + 1] = id
      end
    end
    if #renew > 0 then
      redis.call('ZADD', KEYS[1], 'XX', unpack(renew))
    end
  end
  sweep()
  local reply = {version()}
  for _, conn in ipairs(missing) do
    reply[#reply + 1] = conn
  end
  return reply
elseif verb == 'read' then
  sweep()
  local reply = {version()}
  local counts = redis.call('HGETALL', KEYS[3])
  for i = 1, #counts, 2 do
    reply[#reply + 1] = counts[i]
    reply[#reply + 1] = counts[i + 1]
    reply[#reply + 1] = redis.call('HGET', KEYS[4], counts[i]) or ''
  end
  return reply
end
return redis.error_reply('presence.lua: unknown verb ' .. tostring(verb))
