"""The Lua scripts of the Redis limiter: each one a single atomic step on Redis's clock.

They run ``headend.limits.base.decide`` and the FIFO pools of ``headend.limits.memory`` on
state every instance shares: ``ENTER`` takes a request's buckets and pools in one round trip,
``LEAVE`` gives its slots back and spends its tokens in another. Times come from Redis's
``TIME``, so instances' clocks never disagree. Levels go back as strings (Redis would
truncate Lua numbers to integers).
"""

from __future__ import annotations

# Redis's clock (seconds and ms), and a bucket's level refilled continuously over a minute.
_CLOCK = """
local t = redis.call('TIME')
local secs = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, cap)
  if cap <= 0 then return 0 end
  local v = redis.call('HMGET', key, 'l', 't')
  if not v[1] then return cap end
  return math.min(cap, tonumber(v[1]) + (secs - tonumber(v[2])) * cap / 60)
end
local function keep(key, cap, l)
  redis.call('HSET', key, 'l', tostring(l), 't', tostring(secs))
  -- once full it reads as absent: let it go a second after it would be
  redis.call('EXPIRE', key, math.ceil((cap - l) * 60 / cap) + 1)
end
"""

# KEYS: two per bucket (requests, tokens), then four per pool (holders: zset id -> lease end
# ms; queue: zset id -> ticket; waiters' heartbeats: zset id -> end ms; ticket counter).
# ARGV: buckets, pools, id, most waiting, holder lease ms, waiter lease ms, then rpm and tpm
# (0: none) per bucket, then size per pool.
# Returns {verdict, pool index, then allowed, requests, tokens per bucket}. Verdict 1: in,
# holding every pool; 0: holds the pools before the index and waits in its queue; -1: that
# queue is full; -2: a bucket refused, and nothing was taken.
ENTER = (
    _CLOCK
    + """
local nb, np, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local most, lease, wait = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out, levels, refused = {1, np}, {}, false
for b = 0, nb - 1 do
  local rpm, tpm = tonumber(ARGV[7 + 2 * b]), tonumber(ARGV[8 + 2 * b])
  local r, k = level(KEYS[1 + 2 * b], rpm), level(KEYS[2 + 2 * b], tpm)
  local ok = not ((rpm > 0 and r < 1) or (tpm > 0 and k <= 0))
  refused = refused or not ok
  levels[b] = {rpm, r}
  out[3 + 3 * b], out[4 + 3 * b], out[5 + 3 * b] = ok and 1 or 0, tostring(r), tostring(k)
end
if refused then
  out[1] = -2
  return out
end
for b = 0, nb - 1 do
  local rpm, r = levels[b][1], levels[b][2]
  if rpm > 0 then
    keep(KEYS[1 + 2 * b], rpm, r - 1)
    out[4 + 3 * b] = tostring(r - 1)
  end
end
local function acquire(holders, queue, beats, tickets, size)
  redis.call('ZREMRANGEBYSCORE', holders, '-inf', now)
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', beats, '-inf', now)) do
    redis.call('ZREM', queue, gone)
    redis.call('ZREM', beats, gone)
  end
  for _, key in ipairs({holders, queue, beats, tickets}) do
    redis.call('PEXPIRE', key, lease * 2)
  end
  if redis.call('ZSCORE', holders, id) then return 1 end
  local free = size - redis.call('ZCARD', holders)
  local rank = redis.call('ZRANK', queue, id)
  if not rank then
    rank = redis.call('ZCARD', queue)
    if rank >= free and rank >= most then return -1 end
  end
  if rank < free then
    redis.call('ZREM', queue, id)
    redis.call('ZREM', beats, id)
    redis.call('ZADD', holders, now + lease, id)
    return 1
  end
  if not redis.call('ZSCORE', queue, id) then
    redis.call('ZADD', queue, redis.call('INCR', tickets), id)
  end
  redis.call('ZADD', beats, now + wait, id)
  return 0
end
for p = 0, np - 1 do
  local k = 2 * nb + 4 * p
  local size = tonumber(ARGV[7 + 2 * nb + p])
  local got = acquire(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], size)
  if got ~= 1 then
    out[1], out[2] = got, p
    return out
  end
end
return out
"""
)

# KEYS: three per pool (holders, queue, heartbeats), then the token bucket when spending.
# ARGV: id, pools, tpm (0: nothing to spend), tokens. Gives the slots back (or leaves the
# queues) and takes the tokens from the bucket.
LEAVE = (
    _CLOCK
    + """
local id, np, tpm = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for p = 0, np - 1 do
  for i = 1, 3 do redis.call('ZREM', KEYS[3 * p + i], id) end
end
if tpm > 0 then
  local key = KEYS[3 * np + 1]
  keep(key, tpm, level(key, tpm) - tonumber(ARGV[4]))
end
return 0
"""
)

# KEYS: holders. ARGV: id, lease ms. Extends a held slot's lease (an instance that dies
# stops renewing, and its slots come free when their leases end).
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""
