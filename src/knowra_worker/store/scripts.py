"""Lua scripts: every change of a task is one atomic script run in Redis.

The rules of the state machine are not written here: `lifecycle.TABLE` is rendered into each
script as a Lua table (`RULES`), and a script only asks it what an action leads to.

Every script takes the same seven keys: the task hash, the base name of its chunk hashes, its
lease, the set of active (not final) task ids, the staging hash of the unit being committed,
and the parts and parsed-units hashes of a task split into page ranges.
Chunks live in one hash per *generation* (`<base>:<gen>`): a forced re-run writes a new
generation and publishes it only when it succeeds, so the published chunks stay readable until
then, and stay if the re-run fails or is cancelled.

Rules every script keeps:
- **Validate before the first write.** Redis does not roll a failed script back, so every check
  (epoch, state, the checkpoint a commit extends, counts) comes before any write.
- **Fencing.** A worker's writes carry the epoch it got from its claim; another epoch is refused.
- **Idempotent under retries.** A mutating call carries an operation id; the script stores the id
  and its reply (one slot for workers, one for callers), and a call repeating the last id gets
  the stored reply without doing anything again.
- **Keys expire together.** A final task, its run's chunks and its published chunks get the same
  TTL at the same time, and lose it together when the task becomes active again.

Replies are JSON objects (`outcome` plus details), decoded in one place: `store/replies.py`.
"""

from __future__ import annotations

from knowra_worker.lifecycle import TABLE, State


def _rules_table() -> str:
    """`lifecycle.TABLE` as a Lua table literal: RULES[state][action] = {to, guard, charge}."""
    rows = []
    for state in State:
        entries = [
            f"{action.value}={{to='{r.to.value}',guard='{r.guard.value}',charge='{r.charge.value}'}}"
            for (s, action), r in TABLE.items()
            if s is state
        ]
        rows.append(f"  {state.value}={{{','.join(entries)}}}")
    return "local RULES = {\n" + ",\n".join(rows) + "\n}\n"


_PRELUDE = (
    _rules_table()
    + """
local task, base, lease, active, stage = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local parts, units = KEYS[6], KEYS[7]
local function field(name) return redis.call('HGET', task, name) end
local function num(name) return tonumber(field(name) or '0') end
local function chunks_key(g) return base .. ':' .. g end
local function gen() return field('gen') or '0' end
local function pub() return field('pub') or '' end
local function readable() local p = pub(); if p ~= '' then return p end; return gen() end
local function is_held(st) return st == 'running' or st == 'pausing' or st == 'cancelling' end
local function is_final(st) return st == 'succeeded' or st == 'failed' or st == 'cancelled' end
local function reply(t) return cjson.encode(t) end

-- idempotence: the last operation of each slot ('w' workers, 'c' callers) and its reply
local function remembered(slot, op)
  if op ~= '' and field(slot .. '_op') == op then return field(slot .. '_reply') end
  return nil
end
local function remember(slot, op, r)
  if op ~= '' then redis.call('HSET', task, slot .. '_op', op, slot .. '_reply', r) end
  return r
end

local function rule_for(state, action)
  local by_state = RULES[state]
  if by_state == nil then return nil end
  return by_state[action]
end
local function guard_ok(guard)
  if guard == '' then return true end
  if guard == 'resumable_error' then
    return string.find(field('error') or '', '"LIMIT_EXCEEDED"', 1, true) ~= nil
  end
  return false
end

-- the task, its run's chunks and its published chunks (and a split run's parts): expire
-- (ttl) or persist (nil) together
local function set_ttl(ttl)
  local keys = {task, chunks_key(gen()), parts, units}
  if pub() ~= '' then keys[#keys + 1] = chunks_key(pub()) end
  for _, key in ipairs(keys) do
    if ttl then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
  end
end
-- the page-range parts of a split run, their leases and the units they parsed
local function drop_parts()
  local count = tonumber(redis.call('HGET', parts, 'count') or '0')
  for k = 0, count - 1 do redis.call('DEL', lease .. ':part:' .. k) end
  redis.call('DEL', parts, units)
end
-- the current run's chunks and checkpoint, unless they are the published result
local function drop_run()
  if gen() ~= pub() then redis.call('DEL', chunks_key(gen())) end
  redis.call('DEL', stage)
  drop_parts()
  redis.call('HSET', task, 'chunks', 0, 'checkpoint', '')
end
local function publish()
  local p, g = pub(), gen()
  if p ~= '' and p ~= g then redis.call('DEL', chunks_key(p)) end
  redis.call('HSET', task, 'pub', g)
end
-- a final task becomes active again
local function reopen(task_id)
  set_ttl(nil)
  redis.call('SADD', active, task_id)
  redis.call('HSET', task, 'error', '', 'finished_at', '')
end
-- every effect of reaching `to` by `rule`
local function enter(to, rule, now, ttl, task_id)
  if rule.charge ~= '' then redis.call('HSET', task, 'charge', rule.charge) end
  redis.call('HSET', task, 'state', to, 'updated_at', now)
  if to == 'cancelled' then
    drop_run()
    redis.call('HSET', task, 'error', '')
  elseif to == 'succeeded' then
    publish()
  end
  if is_final(to) then
    -- a failed run may be resumed (time limit): its parts and what they parsed stay, and
    -- expire with the task
    if to ~= 'failed' then drop_parts() end
    redis.call('DEL', lease, stage)
    redis.call('SREM', active, task_id)
    redis.call('HSET', task, 'finished_at', now)
    set_ttl(tonumber(ttl))
  elseif to == 'queued' or to == 'paused' then
    redis.call('DEL', lease)
  end
end
-- a worker's write: the epoch it claimed with must still be the task's, and the state must
-- allow a checkpoint; answers the state, or nil and the refusal to answer
local function owned_state(epoch)
  if field('epoch') ~= epoch then return nil, reply({outcome='stale'}) end
  local st = field('state')
  if not st or not rule_for(st, 'commit') then return nil, reply({outcome='stale', state=st}) end
  return st, nil
end
-- the run's chunk hash holds exactly as many chunks as the checkpoint counts, none staged
local function chunks_consistent()
  return redis.call('HLEN', chunks_key(gen())) == num('chunks')
end
local function hset_pairs(key, first)
  for i = first, #ARGV - 1, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
"""
)

CREATE = (
    _PRELUDE
    + """
-- KEYS: +tasks index, kb index. ARGV: op, fingerprint, now, task_id, field/value pairs...
local op = ARGV[1]
local again = remembered('c', op)
if again then return again end
if redis.call('EXISTS', task) == 1 then
  if field('fingerprint') == ARGV[2] then return reply({outcome='exists'}) end
  return reply({outcome='conflict'})
end
hset_pairs(task, 5)
redis.call('ZADD', KEYS[8], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[9], ARGV[3], ARGV[4])
redis.call('SADD', active, ARGV[4])
return remember('c', op, reply({outcome='created'}))
"""
)

CLAIM = (
    _PRELUDE
    + """
-- ARGV: op, instance_id, now, lease_ms, max_attempts, gave-up error JSON, ttl_s, task_id, pid
local op, now, ttl, task_id = ARGV[1], ARGV[3], ARGV[7], ARGV[8]
local again = remembered('w', op)
if again then return again end
local st = field('state')
if not st then return reply({outcome='missing'}) end
local action
if st == 'queued' then
  action = 'claim'
elseif is_held(st) then
  if redis.call('EXISTS', lease) == 1 then return reply({outcome='busy', state=st}) end
  action = 'take_over'  -- its worker died
else
  return reply({outcome='skip', state=st})
end
local rule = rule_for(st, action)
if not rule then return reply({outcome='skip', state=st}) end
if rule.to ~= 'running' then  -- a pause or cancel its dead worker was asked for
  enter(rule.to, rule, now, ttl, task_id)
  return remember('w', op, reply({outcome='skip', state=rule.to}))
end
local attempts = num('attempts')
if field('charge') ~= '0' then  -- the last attempt ended by death or error: a new one
  if attempts >= tonumber(ARGV[5]) then
    redis.call('HSET', task, 'error', ARGV[6])
    enter('failed', {charge=''}, now, ttl, task_id)
    return remember('w', op, reply({outcome='exhausted', state='failed', attempts=attempts}))
  end
  attempts = attempts + 1
end
local repaired = false
if not chunks_consistent() then  -- the store lost writes: start the run over
  drop_run()
  redis.call('HSET', task, 'units_done', 0)
  repaired = true
end
redis.call('DEL', stage)
local epoch = redis.call('HINCRBY', task, 'epoch', 1)
enter('running', rule, now, ttl, task_id)
redis.call('HSET', task, 'attempts', attempts, 'worker_id', ARGV[2], 'worker_pid', ARGV[9])
if (field('started_at') or '') == '' then redis.call('HSET', task, 'started_at', now) end
redis.call('SET', lease, ARGV[2], 'PX', ARGV[4])
-- the task's parameters and status come with the claim: the worker needs no other read
local fields, all = {}, redis.call('HGETALL', task)
for i = 1, #all - 1, 2 do
  local name = all[i]
  if name ~= 'checkpoint' and not string.find(name, '_reply$') then
    fields[name] = all[i + 1]
  end
end
return remember('w', op, reply({outcome='ok', state='running', epoch=epoch, attempts=attempts,
  checkpoint=field('checkpoint') or '', units_done=num('units_done'), chunks=num('chunks'),
  repaired=repaired, task=fields}))
"""
)

_CHECKPOINT_BASE = """
-- the checkpoint the call extends must be the one the store holds
local function extends_base(units, chunks, staged)
  if num('units_done') ~= tonumber(units) or num('chunks') ~= tonumber(chunks) then
    return false
  end
  local in_stage = 0
  if redis.call('EXISTS', stage) == 1 then
    if redis.call('HGET', stage, 'epoch') ~= field('epoch') then return false end
    in_stage = redis.call('HLEN', stage) - 1
  end
  return in_stage == tonumber(staged)
end
"""

STAGE = (
    _PRELUDE
    + _CHECKPOINT_BASE
    + """
-- A part of a large unit's chunks, held apart until the commit that ends the unit.
-- ARGV: op, epoch, units_done, chunks, staged so far, ttl_ms, seq/chunk pairs...
local op = ARGV[1]
local again = remembered('w', op)
if again then return again end
local st, refused = owned_state(ARGV[2])
if refused then return refused end
if not extends_base(ARGV[3], ARGV[4], ARGV[5]) then
  return reply({outcome='diverged', state=st})
end
redis.call('HSET', stage, 'epoch', ARGV[2])
hset_pairs(stage, 7)
redis.call('PEXPIRE', stage, ARGV[6])
return remember('w', op, reply({outcome='ok', state=st}))
"""
)

COMMIT = (
    _PRELUDE
    + _CHECKPOINT_BASE
    + """
-- A checkpoint: the unit's chunks (with those staged), progress and the checkpoint itself;
-- with `finish`, the last one: the run then succeeds in the same step (as SETTLE succeed).
-- ARGV: op, epoch, instance_id, lease_ms, units_done, chunks, staged, new units_done,
--       new chunks, units_parsed delta, flags ('reset': start the run over first,
--       'finish'), n fields, field/value pairs (n), seq/chunk pairs..., now, ttl_s, task_id
local op = ARGV[1]
local again = remembered('w', op)
if again then return again end
local st, refused = owned_state(ARGV[2])
if refused then return refused end
local reset = string.find(ARGV[11], 'reset', 1, true) ~= nil
local finish = string.find(ARGV[11], 'finish', 1, true) ~= nil
local now, ttl, task_id = ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV]
local last_chunk = #ARGV - 3
if not reset and not extends_base(ARGV[5], ARGV[6], ARGV[7]) then
  return reply({outcome='diverged', state=st})
end
local nfields = tonumber(ARGV[12])
local first_chunk = 13 + 2 * nfields
local staged = tonumber(ARGV[7])
local base_chunks = tonumber(ARGV[6])
if reset then base_chunks = 0; staged = 0 end
if base_chunks + staged + (last_chunk - first_chunk + 1) / 2 ~= tonumber(ARGV[9]) then
  return reply({outcome='invalid', state=st})
end
local done = finish and rule_for(st, 'succeed') or nil
if done and done.to == 'succeeded' and not reset
    and redis.call('HLEN', chunks_key(gen())) ~= base_chunks then
  return reply({outcome='diverged', state=st})  -- published only with exactly its chunks
end
-- validated: write
if reset then drop_run() end
local target = chunks_key(gen())
if staged > 0 then
  local held = redis.call('HGETALL', stage)
  for i = 1, #held - 1, 2 do
    if held[i] ~= 'epoch' then redis.call('HSET', target, held[i], held[i + 1]) end
  end
end
redis.call('DEL', stage)
for i = first_chunk, last_chunk - 1, 2 do redis.call('HSET', target, ARGV[i], ARGV[i + 1]) end
for i = 13, first_chunk - 2, 2 do redis.call('HSET', task, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', task, 'units_done', ARGV[8], 'chunks', ARGV[9])
redis.call('HINCRBY', task, 'units_parsed', ARGV[10])
for u = tonumber(ARGV[5]), tonumber(ARGV[8]) - 1 do  -- units parts parsed, now joined
  redis.call('HDEL', units, tostring(u))
end
if done then
  if done.to == 'succeeded' then redis.call('HSET', task, 'error', '') end
  enter(done.to, done, now, ttl, task_id)
  return remember('w', op, reply({outcome='ok', state=done.to}))
end
redis.call('SET', lease, ARGV[3], 'PX', ARGV[4])
return remember('w', op, reply({outcome='ok', state=st}))
"""
)

RENEW = """
-- KEYS: task, lease; ARGV: epoch, instance_id, lease_ms. Idempotent by nature.
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""

SETTLE = (
    _PRELUDE
    + """
-- The worker leaves its task: succeed, fail, stop (at a pause or cancel), yield, retry.
-- ARGV: op, epoch, action, now, ttl_s, task_id, field/value pairs...
local op, action, now, ttl, task_id = ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local again = remembered('w', op)
if again then return again end
if field('epoch') ~= ARGV[2] then return reply({outcome='stale'}) end
local st = field('state')
if not st or not is_held(st) then return reply({outcome='stale', state=st}) end
local rule = rule_for(st, action)
if not rule then return reply({outcome='refused', state=st}) end
if rule.to == 'succeeded' and (not chunks_consistent() or redis.call('EXISTS', stage) == 1) then
  return reply({outcome='diverged', state=st})
end
hset_pairs(task, 7)
enter(rule.to, rule, now, ttl, task_id)
return remember('w', op, reply({outcome='ok', state=rule.to}))
"""
)

CONTROL = (
    _PRELUDE
    + """
-- A caller's pause, resume, cancel or rerun. ARGV: op, action, now, ttl_s, task_id.
local op, action, now, ttl, task_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local again = remembered('c', op)
if again then return again end
local st = field('state')
if not st then return reply({outcome='missing'}) end
local rule = rule_for(st, action)
if not rule or not guard_ok(rule.guard) then return reply({outcome='invalid', state=st}) end
if rule.to == st and action ~= 'rerun' then
  return reply({outcome='ok', state=st, changed=false})
end
if is_final(st) and not is_final(rule.to) then reopen(task_id) end
if action == 'rerun' then  -- a new run from the start, in a new generation
  if gen() ~= pub() then redis.call('DEL', chunks_key(gen())) end
  redis.call('DEL', stage)
  drop_parts()
  redis.call('HINCRBY', task, 'gen', 1)
  redis.call('HSET', task, 'checkpoint', '', 'units_done', 0, 'chunks', 0, 'units_parsed', 0,
    'attempts', 0, 'started_at', '', 'warnings', '')
end
enter(rule.to, rule, now, ttl, task_id)
return remember('c', op, reply({outcome='ok', state=rule.to, changed=true}))
"""
)

READ_CHUNKS = (
    _PRELUDE
    + """
-- The readable generation's chunks seq offset..offset+limit-1 (the published run, else the
-- current one). ARGV: offset, limit, generation wanted ('' for the current one).
-- Answers {generation, total, chunk...} or {generation, -1} when another generation was wanted.
local g = readable()
if ARGV[3] ~= '' and ARGV[3] ~= g then return {g, -1} end
local key = chunks_key(g)
local total = redis.call('HLEN', key)
local last = math.min(tonumber(ARGV[1]) + tonumber(ARGV[2]), total) - 1
local fields = {}
for s = tonumber(ARGV[1]), last do fields[#fields + 1] = tostring(s) end
if #fields == 0 then return {g, total} end
local values = redis.call('HMGET', key, unpack(fields))
table.insert(values, 1, total)
table.insert(values, 1, g)
return values
"""
)

SPLIT = (
    _PRELUDE
    + """
-- The worker running a task splits it into page-range parts, once: a later call (a resumed
-- run) answers the parts made, unless the file changed. Parts wholly before the run's
-- checkpoint are done from the start. ARGV: op, epoch, source, next unit, the document's
-- facts for the parts' workers (JSON, or ''), start/end pairs. Answers each part as
-- {start, end, next, done}.
local op = ARGV[1]
local again = remembered('w', op)
if again then return again end
local st, refused = owned_state(ARGV[2])
if refused then return refused end
if redis.call('HGET', parts, 'source') ~= ARGV[3] then
  drop_parts()
  local n, from = 0, tonumber(ARGV[4])
  for i = 6, #ARGV - 1, 2 do
    local k, first, stop = tostring(n), tonumber(ARGV[i]), tonumber(ARGV[i + 1])
    local next_unit = math.min(math.max(first, from), stop)
    local done = 0
    if next_unit >= stop then done = 1 end
    redis.call('HSET', parts, k .. ':start', first, k .. ':end', stop, k .. ':next', next_unit,
      k .. ':epoch', 0, k .. ':done', done)
    n = n + 1
  end
  redis.call('HSET', parts, 'count', n, 'source', ARGV[3], 'facts', ARGV[5])
end
local out = {}
for k = 0, tonumber(redis.call('HGET', parts, 'count')) - 1 do
  local v = redis.call('HMGET', parts, k .. ':start', k .. ':end', k .. ':next', k .. ':done')
  out[#out + 1] = {tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])}
end
return remember('w', op, reply({outcome='ok', state=st, parts=out}))
"""
)

PART_CLAIM = (
    _PRELUDE
    + """
-- A worker takes part k of a split task to parse (only while the task runs, the part not done
-- nor held by a live worker). KEYS[8]: the part's lease. ARGV: op, k, holder, lease_ms, source.
local op, k = ARGV[1], ARGV[2]
local again = remembered('p' .. k, op)
if again then return again end
local st = field('state')
if not st then return reply({outcome='missing'}) end
if not rule_for(st, 'part') then return reply({outcome='refused', state=st}) end
if redis.call('HGET', parts, 'source') ~= ARGV[5] or
    redis.call('HEXISTS', parts, k .. ':start') == 0 then
  return reply({outcome='stale', state=st})  -- another file, or parts made anew since
end
if redis.call('HGET', parts, k .. ':done') == '1' then return reply({outcome='skip', state=st}) end
if redis.call('EXISTS', KEYS[8]) == 1 then return reply({outcome='busy', state=st}) end
local epoch = redis.call('HINCRBY', parts, k .. ':epoch', 1)
redis.call('SET', KEYS[8], ARGV[3], 'PX', ARGV[4])
local v = redis.call('HMGET', parts, k .. ':next', k .. ':end')
return remember('p' .. k, op, reply({outcome='ok', state=st, epoch=epoch,
  next=tonumber(v[1]), stop=tonumber(v[2]), file_path=field('file_path')}))
"""
)

PART_STORE = (
    _PRELUDE
    + """
-- Units a part's worker parsed, in order from the part's next unit; the part is done after
-- its last unit, or when its holder says it is (the task's own worker, which parsed the
-- rest itself). KEYS[8]: the part's lease. ARGV: op, k, epoch, holder, lease_ms, finished
-- ('1' or ''), unit/JSON pairs...
local op, k = ARGV[1], ARGV[2]
local again = remembered('p' .. k, op)
if again then return again end
local st = field('state')
if not st or not rule_for(st, 'part') then return reply({outcome='refused', state=st}) end
if redis.call('HGET', parts, k .. ':epoch') ~= ARGV[3] then
  return reply({outcome='stale', state=st})
end
local expect = tonumber(redis.call('HGET', parts, k .. ':next'))
local stop = tonumber(redis.call('HGET', parts, k .. ':end'))
for i = 7, #ARGV - 1, 2 do
  if tonumber(ARGV[i]) ~= expect or expect >= stop then
    return reply({outcome='invalid', state=st})
  end
  expect = expect + 1
end
hset_pairs(units, 7)
redis.call('HSET', parts, k .. ':next', expect)
redis.call('HINCRBY', task, 'units_parsed', (#ARGV - 6) / 2)
if expect >= stop or ARGV[6] == '1' then
  redis.call('HSET', parts, k .. ':done', 1)
  redis.call('DEL', KEYS[8])
else
  redis.call('SET', KEYS[8], ARGV[4], 'PX', ARGV[5])
end
return remember('p' .. k, op, reply({outcome='ok', state=st}))
"""
)

PART_RENEW = """
-- KEYS: a part's lease; ARGV: holder, lease_ms (0: give the part up at once). Renews (or
-- drops) it while the holder still has it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
