"""Lua scripts: every state change of a task is one atomic script run in Redis.

Every script takes the same four keys: the task hash, the base name of its chunk hashes,
its lease, and the set of active (not final) task ids. Chunks live in one hash per
*generation* (`<base>:<gen>`): a re-run writes a new generation and publishes it only when
it succeeds, so readers never see a mix of two runs.

A worker's writes carry the fencing epoch it got from CLAIM; a write whose epoch is no
longer the task's is refused ("stale"), so a worker that lost its task can never touch it.
"""

_PRELUDE = """
local task, base, lease, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function chunks_key(gen) return base .. ':' .. gen end
local function gen() return redis.call('HGET', task, 'gen') or '0' end
local function pub() return redis.call('HGET', task, 'pub') or '' end
local function drop_all_chunks()
  redis.call('DEL', chunks_key(gen()))
  if pub() ~= '' then redis.call('DEL', chunks_key(pub())) end
  redis.call('HSET', task, 'pub', '', 'chunks', 0)
end
local function finish(state, now, ttl, task_id)
  redis.call('HSET', task, 'state', state, 'updated_at', now, 'finished_at', now)
  redis.call('DEL', lease)
  redis.call('SREM', active, task_id)
  redis.call('EXPIRE', task, ttl)
  redis.call('EXPIRE', chunks_key(gen()), ttl)
  if pub() ~= '' then redis.call('EXPIRE', chunks_key(pub()), ttl) end
end
"""

CREATE = (
    _PRELUDE
    + """
-- KEYS: +tasks index, kb index; ARGV: fingerprint, now, task_id, field/value pairs...
if redis.call('EXISTS', task) == 1 then
  if redis.call('HGET', task, 'fingerprint') == ARGV[1] then return 0 end
  return -1
end
redis.call('HSET', task, unpack(ARGV, 4))
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[3])
redis.call('SADD', active, ARGV[3])
return 1
"""
)

CLAIM = (
    _PRELUDE
    + """
-- ARGV: worker_id, now, lease_ttl_ms, max_attempts, gave-up error JSON, ttl_s, task_id, pid
local st = redis.call('HGET', task, 'state')
if not st then return {'missing'} end
if st == 'running' or st == 'pausing' or st == 'cancelling' then
  if redis.call('EXISTS', lease) == 1 then return {'busy', st} end
  -- its worker died: a pause or cancel it was asked for takes effect now
  if st == 'pausing' then
    redis.call('HSET', task, 'state', 'paused', 'updated_at', ARGV[2])
    return {'skip', 'paused'}
  end
  if st == 'cancelling' then
    drop_all_chunks()
    finish('cancelled', ARGV[2], ARGV[6], ARGV[7])
    return {'skip', 'cancelled'}
  end
elseif st ~= 'queued' then
  return {'skip', st}
end
local attempts = tonumber(redis.call('HGET', task, 'attempts') or '0')
if attempts >= tonumber(ARGV[4]) then
  redis.call('HSET', task, 'error', ARGV[5])
  finish('failed', ARGV[2], ARGV[6], ARGV[7])
  return {'exhausted', 'failed', attempts}
end
local epoch = redis.call('HINCRBY', task, 'epoch', 1)
attempts = redis.call('HINCRBY', task, 'attempts', 1)
redis.call('HSET', task, 'state', 'running', 'worker_id', ARGV[1], 'worker_pid', ARGV[8],
  'updated_at', ARGV[2])
if (redis.call('HGET', task, 'started_at') or '') == '' then
  redis.call('HSET', task, 'started_at', ARGV[2])
end
redis.call('SET', lease, ARGV[1], 'PX', ARGV[3])
return {'ok', tostring(epoch), tostring(attempts), redis.call('HGET', task, 'checkpoint') or ''}
"""
)

COMMIT = (
    _PRELUDE
    + """
-- ARGV: epoch, worker_id, lease_ttl_ms, units_parsed_delta, restart (1: drop this run's
--       chunks first), n fields, field/value pairs (n), seq/chunk pairs
if redis.call('HGET', task, 'epoch') ~= ARGV[1] then return {'stale'} end
local st = redis.call('HGET', task, 'state')
if st ~= 'running' and st ~= 'pausing' and st ~= 'cancelling' then return {'stale', st} end
if ARGV[5] == '1' then redis.call('DEL', chunks_key(gen())) end
local nfields = tonumber(ARGV[6])
local first_chunk = 7 + 2 * nfields
if nfields > 0 then redis.call('HSET', task, unpack(ARGV, 7, first_chunk - 1)) end
if #ARGV >= first_chunk then redis.call('HSET', chunks_key(gen()), unpack(ARGV, first_chunk)) end
redis.call('HINCRBY', task, 'units_parsed', ARGV[4])
redis.call('SET', lease, ARGV[2], 'PX', ARGV[3])
return {'ok', st}
"""
)

RENEW = """
-- KEYS: task, lease; ARGV: epoch, worker_id, lease_ttl_ms
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""

SETTLE = (
    _PRELUDE
    + """
-- The worker leaves its task: finished, failed, paused, or handed back to the queue.
-- ARGV: epoch, target state, now, ttl_s, task_id, field/value pairs...
if redis.call('HGET', task, 'epoch') ~= ARGV[1] then return {'stale'} end
local st = redis.call('HGET', task, 'state')
local target = ARGV[2]
if st ~= 'running' and st ~= 'pausing' and st ~= 'cancelling' then return {'stale', st} end
if #ARGV >= 6 then redis.call('HSET', task, unpack(ARGV, 6)) end
if st == 'cancelling' or target == 'cancelled' then
  drop_all_chunks()
  finish('cancelled', ARGV[3], ARGV[4], ARGV[5])
  return {'ok', 'cancelled'}
end
if st == 'pausing' and target == 'queued' then target = 'paused' end
if target == 'succeeded' then
  if pub() ~= '' and pub() ~= gen() then redis.call('DEL', chunks_key(pub())) end
  redis.call('HSET', task, 'pub', gen())
end
if target == 'succeeded' or target == 'failed' then
  finish(target, ARGV[3], ARGV[4], ARGV[5])
else
  redis.call('DEL', lease)
  redis.call('HSET', task, 'state', target, 'updated_at', ARGV[3])
end
return {'ok', target}
"""
)

CONTROL = (
    _PRELUDE
    + """
-- A caller's pause, resume or cancel. ARGV: action, now, ttl_s, task_id.
-- Answers {'ok', state, changed} or {'invalid', state}.
local st = redis.call('HGET', task, 'state')
if not st then return {'missing'} end
local action, to = ARGV[1], nil
if action == 'pause' then
  if st == 'queued' then to = 'paused' elseif st == 'running' then to = 'pausing'
  elseif st ~= 'pausing' and st ~= 'paused' then return {'invalid', st} end
elseif action == 'resume' then
  if st == 'paused' then to = 'queued' elseif st == 'pausing' then to = 'running'
  elseif st == 'failed' and string.find(redis.call('HGET', task, 'error') or '',
                                        '"LIMIT_EXCEEDED"', 1, true) then
    -- stopped by the time limit at a checkpoint: go on from there
    to = 'queued'
    redis.call('HSET', task, 'error', '', 'finished_at', '', 'attempts', 0)
    redis.call('PERSIST', task)
    redis.call('PERSIST', chunks_key(gen()))
    redis.call('SADD', active, ARGV[4])
  elseif st ~= 'queued' and st ~= 'running' then return {'invalid', st} end
elseif action == 'cancel' then
  if st == 'queued' or st == 'paused' then to = 'cancelled'
  elseif st == 'running' or st == 'pausing' then to = 'cancelling'
  elseif st ~= 'cancelling' and st ~= 'cancelled' then return {'invalid', st} end
else
  return {'invalid', st}
end
if not to then return {'ok', st, 0} end
if to == 'cancelled' then
  drop_all_chunks()
  finish('cancelled', ARGV[2], ARGV[3], ARGV[4])
else
  redis.call('HSET', task, 'state', to, 'updated_at', ARGV[2])
end
return {'ok', to, 1}
"""
)

RERUN = (
    _PRELUDE
    + """
-- Run a finished task again from the start; its published chunks stay readable until the
-- new run succeeds. ARGV: now, task_id. Answers {'ok'} or {'invalid', state}.
local st = redis.call('HGET', task, 'state')
if not st then return {'missing'} end
if st ~= 'succeeded' and st ~= 'failed' and st ~= 'cancelled' then return {'invalid', st} end
if gen() ~= pub() then redis.call('DEL', chunks_key(gen())) end
redis.call('HINCRBY', task, 'gen', 1)
redis.call('HSET', task, 'state', 'queued', 'updated_at', ARGV[1], 'checkpoint', '',
  'units_done', 0, 'units_parsed', 0, 'attempts', 0, 'error', '', 'started_at', '',
  'finished_at', '')
redis.call('PERSIST', task)
if pub() ~= '' then redis.call('PERSIST', chunks_key(pub())) end
redis.call('SADD', active, ARGV[2])
return {'ok'}
"""
)

READ_CHUNKS = (
    _PRELUDE
    + """
-- The readable generation's chunks seq offset..offset+limit-1. ARGV: offset, limit.
local g = pub()
if g == '' then g = gen() end
local key = chunks_key(g)
local total = redis.call('HLEN', key)
local last = math.min(tonumber(ARGV[1]) + tonumber(ARGV[2]), total) - 1
local fields = {}
for s = tonumber(ARGV[1]), last do fields[#fields + 1] = tostring(s) end
if #fields == 0 then return {total} end
local values = redis.call('HMGET', key, unpack(fields))
table.insert(values, 1, total)
return values
"""
)
