#!lua name=doorless_v1
-- The Doorless relay's functions (docs/self-hosting.md, "Cluster store"). Loaded with
-- FUNCTION LOAD REPLACE by every relay at start; replicated with the data.
--
-- Keys of one mailbox share the hash tag {<mailbox id in hex>}, so they live in one slot:
--   KEYS[1] the stream: one entry per blob, field "p" = payload; the entry id is the sequence
--           number (ms-s, see keys.rs); the relay parses ids, Lua never does arithmetic on them.
--   KEYS[2] the quota hash: "c" blobs held, "b" payload bytes held, "t" last deposit or ack (ms).
-- The wake-up channel (same hash tag) is passed as an argument: it is not a key.

-- Removes the entries below `minid` (exclusive) and takes them off the quota counters; returns
-- {count, bytes} removed.
local function trim_below(stream, quota, minid)
  local gone = redis.call('XRANGE', stream, '-', '(' .. minid)
  local count, bytes = 0, 0
  for _, entry in ipairs(gone) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'p' then
        count = count + 1
        bytes = bytes + string.len(fields[i + 1])
      end
    end
  end
  if #gone > 0 then
    redis.call('XTRIM', stream, 'MINID', minid)
    redis.call('HINCRBY', quota, 'c', -count)
    redis.call('HINCRBY', quota, 'b', -bytes)
  end
  return {count, bytes}
end

-- ARGV: payload, max count, max bytes, now (ms), wake-up channel. Returns the entry id.
local function deposit(keys, args)
  local stream, quota = keys[1], keys[2]
  local payload = args[1]
  local len = string.len(payload)
  local count = tonumber(redis.call('HGET', quota, 'c') or '0')
  local bytes = tonumber(redis.call('HGET', quota, 'b') or '0')
  if count >= tonumber(args[2]) then
    return redis.error_reply('DOORLESS_FULL_COUNT mailbox full (count)')
  end
  if bytes + len > tonumber(args[3]) then
    return redis.error_reply('DOORLESS_FULL_BYTES mailbox full (bytes)')
  end
  -- The relay's clock names the millisecond; the server picks the sequence within it. A stream
  -- whose last entry is later (another relay's clock runs ahead) takes the server's own id,
  -- which is always above the last one.
  local ok, id = pcall(redis.call, 'XADD', stream, args[4] .. '-*', 'p', payload)
  if not ok then
    id = redis.call('XADD', stream, '*', 'p', payload)
  end
  -- The relay's sequence numbers hold 16 bits of sequence within a millisecond.
  local dash = string.find(id, '-', 1, true)
  if string.len(id) - dash > 5 or tonumber(string.sub(id, dash + 1)) > 65535 then
    redis.call('XDEL', stream, id)
    return redis.error_reply('DOORLESS_SEQ_RANGE too many deposits in one millisecond')
  end
  redis.call('HINCRBY', quota, 'c', 1)
  redis.call('HINCRBY', quota, 'b', len)
  redis.call('HSET', quota, 't', args[4])
  redis.call('SPUBLISH', args[5], '')
  return id
end

-- ARGV: the id just above the last acknowledged one, now (ms). Returns {count, bytes} removed.
local function ack(keys, args)
  local removed = trim_below(keys[1], keys[2], args[1])
  if redis.call('EXISTS', keys[2]) == 1 then
    redis.call('HSET', keys[2], 't', args[2])
  end
  return removed
end

-- ARGV: the lowest id still alive, the time (ms) before which an empty untouched mailbox is
-- forgotten. Returns {count, bytes} removed.
local function expire(keys, args)
  local stream, quota = keys[1], keys[2]
  local removed = trim_below(stream, quota, args[1])
  local touched = tonumber(redis.call('HGET', quota, 't') or '0')
  if redis.call('XLEN', stream) == 0 and touched <= tonumber(args[2]) then
    redis.call('DEL', stream, quota)
  end
  return removed
end

-- ARGV: first id, most entries. Returns id1, payload1, id2, payload2, ...
local function fetch(keys, args)
  local out = {}
  for _, entry in ipairs(redis.call('XRANGE', keys[1], args[1], '+', 'COUNT', args[2])) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'p' then
        out[#out + 1] = entry[1]
        out[#out + 1] = fields[i + 1]
      end
    end
  end
  return out
end

redis.register_function('doorless_deposit', deposit)
redis.register_function{function_name = 'doorless_ack', callback = ack, flags = {'allow-oom'}}
redis.register_function{function_name = 'doorless_expire', callback = expire, flags = {'allow-oom'}}
redis.register_function{function_name = 'doorless_fetch', callback = fetch, flags = {'no-writes'}}
