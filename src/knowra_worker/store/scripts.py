"""Lua scripts: every state change of a task is one atomic script run in Redis.

A worker's writes carry the fencing epoch it got from CLAIM; a write whose epoch is no
longer the task's is refused ("stale"), so a worker that lost its task can never touch it.
"""

CREATE = """
-- KEYS: task, tasks index, kb index; ARGV: fingerprint, now, task_id, field/value pairs...
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'fingerprint') == ARGV[1] then return 0 end
  return -1
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return 1
"""

CLAIM = """
-- KEYS: task, lease, chunks; ARGV: worker_id, now, lease_ttl_ms, max_attempts, error, ttl_s
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing'} end
if st == 'running' or st == 'pausing' or st == 'cancelling' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', st} end
  if st == 'pausing' then
    redis.call('HSET', KEYS[1], 'state', 'paused', 'updated_at', ARGV[2])
    return {'skip', 'paused'}
  end
  if st == 'cancelling' then
    redis.call('DEL', KEYS[3])
    redis.call('HSET', KEYS[1], 'state', 'cancelled', 'chunks', 0, 'updated_at', ARGV[2],
      'finished_at', ARGV[2])
    return {'skip', 'cancelled'}
  end
elseif st ~= 'queued' then
  return {'skip', st}
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[5], 'updated_at', ARGV[2],
    'finished_at', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  return {'exhausted', 'failed', attempts}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker_id', ARGV[1], 'updated_at', ARGV[2])
if (redis.call('HGET', KEYS[1], 'started_at') or '') == '' then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[2])
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return {'ok', tostring(epoch), tostring(attempts),
        redis.call('HGET', KEYS[1], 'checkpoint') or ''}
"""

COMMIT = """
-- KEYS: task, chunks, lease
-- ARGV: epoch, worker_id, lease_ttl_ms, units_parsed_delta, field/value pairs (n), chunk pairs
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return {'stale'} end
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'running' and st ~= 'pausing' and st ~= 'cancelling' then return {'stale', st} end
local nfields = tonumber(ARGV[5])
local first_chunk = 6 + 2 * nfields
if nfields > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 6, first_chunk - 1)) end
if #ARGV >= first_chunk then redis.call('HSET', KEYS[2], unpack(ARGV, first_chunk)) end
redis.call('HINCRBY', KEYS[1], 'units_parsed', ARGV[4])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return {'ok', st}
"""

RENEW = """
-- KEYS: task, lease; ARGV: epoch, worker_id, lease_ttl_ms
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""

SETTLE = """
-- The worker leaves its task: finished, failed, paused, or handed back to the queue.
-- KEYS: task, chunks, lease; ARGV: epoch, target state, now, ttl_s, field/value pairs...
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return {'stale'} end
local st = redis.call('HGET', KEYS[1], 'state')
local target = ARGV[2]
if st == 'cancelling' or target == 'cancelled' then
  target = 'cancelled'
  redis.call('DEL', KEYS[2])
elseif st == 'pausing' and target == 'queued' then
  target = 'paused'
elseif st ~= 'running' and st ~= 'pausing' then
  return {'stale', st}
end
redis.call('DEL', KEYS[3])
if #ARGV >= 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', ARGV[3])
if target == 'succeeded' or target == 'failed' or target == 'cancelled' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
  if target == 'cancelled' then redis.call('HSET', KEYS[1], 'chunks', 0) end
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return {'ok', target}
"""
