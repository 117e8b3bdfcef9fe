"""The Lua scripts of the Redis limiter: each one a single atomic step on Redis's clock.

They run ``headend.limits.base.decide`` and the FIFO pool of ``headend.limits.memory`` on
state every instance shares. Times come from Redis's ``TIME``, so instances' clocks never
disagree.
"""

from __future__ import annotations

# KEYS: request bucket, token bucket. ARGV: rpm, tpm (0: none), tokens to spend (-1: take a
# request). Returns {allowed, requests left, tokens left}, levels as strings (Redis would
# truncate Lua numbers to integers).
RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, spend = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function level(key, cap)
  if cap <= 0 then return 0 end
  local v = redis.call('HMGET', key, 'l', 't')
  if not v[1] then return cap end
  return math.min(cap, tonumber(v[1]) + (now - tonumber(v[2])) * cap / 60)
end
local function keep(key, cap, l)
  redis.call('HSET', key, 'l', tostring(l), 't', tostring(now))
  -- once full it reads as absent: let it go a second after it would be
  redis.call('EXPIRE', key, math.ceil((cap - l) * 60 / cap) + 1)
end
local r, k = level(KEYS[1], rpm), level(KEYS[2], tpm)
local allowed = 1
if spend >= 0 then
  k = k - spend
  keep(KEYS[2], tpm, k)
else
  if (rpm > 0 and r < 1) or (tpm > 0 and k <= 0) then
    allowed = 0
  elseif rpm > 0 then
    r = r - 1
    keep(KEYS[1], rpm, r)
  end
end
return {allowed, tostring(r), tostring(k)}
"""

# KEYS: holders (zset id -> lease end, ms), queue (zset id -> ticket), waiters' heartbeats
# (zset id -> end, ms), ticket counter. ARGV: id, size, max waiting, holder lease ms, waiter
# lease ms. Returns 1: holds a slot; 0: waits in the queue; -1: the queue is full.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, size, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, wait = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('ZREM', KEYS[2], gone)
  redis.call('ZREM', KEYS[3], gone)
end
local ttl = lease * 2
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
if redis.call('ZSCORE', KEYS[1], id) then return 1 end
local free = size - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], id)
if not rank then
  rank = redis.call('ZCARD', KEYS[2])
  if rank >= free and rank >= most then return -1 end
end
if rank < free then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[1], now + lease, id)
  return 1
end
if not redis.call('ZSCORE', KEYS[2], id) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), id)
end
redis.call('ZADD', KEYS[3], now + wait, id)
return 0
"""

# KEYS: holders, queue, heartbeats. ARGV: id. Gives a slot back, or leaves the queue.
RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 0
"""

# KEYS: holders. ARGV: id, lease ms. Extends a held slot's lease (an instance that dies
# stops renewing, and its slots come free when their leases end).
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""
