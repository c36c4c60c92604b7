import type { Redis } from "ioredis";
import { LUA_NOW } from "./delayed-set.js";
import { LUA_PRIO_KEY, LUA_REQUEUE } from "./priority-lane.js";

/**
 * The reliable list mode's Lua scripts. Each is one atomic step, so a consumer that dies between two
 * of them leaves every message in exactly one place: the queue, a processing list, the delayed set
 * or the dead-letter queue. Settling removes the item from the processing list first and does the
 * rest only when it was still there: a message the reaper (or close) has already handed back is
 * not pushed twice. Keys are named by ./reliable-item.ts; the reaper derives per-consumer keys from
 * prefixes, which on a Redis Cluster carry the queue's hash tag (./cluster-keys.ts), so every key a
 * script touches for one queue lies in that queue's slot. The *_MANY scripts take many queues at
 * once: on a Cluster their callers make one call per slot.
 */

/**
 * Tags items (see ./reliable-item.ts), or adds one to the delivery count of tagged ones, in place.
 * `ids`: the id counter (KEYS[3] when not given), advanced once for all the untagged items of the call.
 */
const TAG = `${LUA_PRIO_KEY}
local P = string.char(0) .. 'wqueue:'
local function count_of(item)
  if string.sub(item, 1, #P) ~= P then return nil end
  local c1 = string.find(item, ':', #P + 1, true)
  local c2 = c1 and string.find(item, ':', c1 + 1, true)
  local n = c2 and tonumber(string.sub(item, c1 + 1, c2 - 1))
  if n then return n, c1, c2 end
  return nil
end
local function tag_all(items, ids)
  local fresh = 0
  for i = 1, #items do if not count_of(items[i]) then fresh = fresh + 1 end end
  local id = fresh > 0 and (redis.call('INCRBY', ids or KEYS[3], fresh) - fresh) or 0
  for i = 1, #items do
    local item = items[i]
    local n, c1, c2 = count_of(item)
    if n then
      items[i] = string.sub(item, 1, c1) .. string.format('%d', n + 1) .. string.sub(item, c2)
    else
      id = id + 1
      items[i] = P .. string.format('%d', id) .. ':1:' .. item
    end
  end
  return items
end`;

/**
 * KEYS: source, processing, ids, consumers, heartbeat. ARGV: max, consumer id, heartbeat TTL ms,
 * [item BLMOVEd to the tail of processing]. Registers the consumer and refreshes its heartbeat
 * (so no processing list fills while unregistered), adopts the BLMOVEd item if it is still there,
 * then moves up to max - adopted more: priority items first (./priority-lane.ts), then from the
 * head of the source. Returns the tagged items.
 */
const CLAIM = `${TAG}
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('SET', KEYS[5], '1', 'PX', ARGV[3])
local out = {}
if #ARGV >= 4 and redis.call('LINDEX', KEYS[2], -1) == ARGV[4] then
  redis.call('RPOP', KEYS[2])
  out[1] = ARGV[4]
end
local want = tonumber(ARGV[1]) - #out
if want > 0 then
  local ranked = redis.call('ZPOPMIN', prio_key(KEYS[1]), want)
  for i = 1, #ranked, 2 do out[#out + 1] = ranked[i] end
  want = tonumber(ARGV[1]) - #out
end
if want > 0 then
  local items = redis.call('LPOP', KEYS[1], want)
  if items then for i = 1, #items do out[#out + 1] = items[i] end end
end
tag_all(out)
for i = 1, #out, 1000 do redis.call('RPUSH', KEYS[2], unpack(out, i, math.min(i + 999, #out))) end
return out`;

/**
 * CLAIM for several consumers (each of its own queue) in one call, from the head of each source
 * only (no BLMOVEd item to adopt). KEYS: per consumer, source, processing, ids, consumers,
 * heartbeat. ARGV: heartbeat TTL ms, then per consumer, max and consumer id. A consumer is
 * registered and its heartbeat refreshed only when it takes something (before its processing list
 * fills, as CLAIM does): an idle poll writes nothing. Priority items (./priority-lane.ts) come
 * first, then the list's head. Returns per consumer `{1, items...}`, or
 * `{0, error}` when its source could not be read (a key of the wrong type), so one bad queue fails
 * its own receive and leaves the others' claims whole.
 */
const CLAIM_MANY = `${TAG}
local result = {}
for g = 0, #KEYS / 5 - 1 do
  local k = g * 5
  local want = tonumber(ARGV[g * 2 + 2])
  local ranked = redis.call('ZPOPMIN', prio_key(KEYS[k + 1]), want)
  local items = false
  if want > #ranked / 2 then items = redis.pcall('LPOP', KEYS[k + 1], want - #ranked / 2) end
  if #ranked > 0 then
    if type(items) ~= 'table' or items.err then items = {} end
    for i = #ranked - 1, 1, -2 do table.insert(items, 1, ranked[i]) end
  end
  if type(items) == 'table' and items.err then
    result[g + 1] = {0, items.err}
  elseif not items then
    result[g + 1] = {1}
  else
    redis.call('SADD', KEYS[k + 4], ARGV[g * 2 + 3])
    redis.call('SET', KEYS[k + 5], '1', 'PX', ARGV[1])
    tag_all(items, KEYS[k + 3])
    for i = 1, #items, 1000 do redis.call('RPUSH', KEYS[k + 2], unpack(items, i, math.min(i + 999, #items))) end
    table.insert(items, 1, 1)
    result[g + 1] = items
  end
end
return result`;

/** KEYS: sources. Returns the 1-based positions of those holding something, priority items included (an idle poll: reads only). */
const PROBE = `${LUA_PRIO_KEY}
local found = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i], prio_key(KEYS[i])) > 0 then found[#found + 1] = i end
end
return found`;

/** KEYS: processing. ARGV: items. Returns how many were still there. */
const ACK = `local n = 0
for i = 1, #ARGV do n = n + redis.call('LREM', KEYS[1], 1, ARGV[i]) end
return n`;

/**
 * ACK for several consumers: KEYS: their processing lists. ARGV: per key, the count of its items,
 * then the items. Returns how many were still there.
 */
const ACK_MANY = `local n, a = 0, 1
for k = 1, #KEYS do
  local count = tonumber(ARGV[a])
  a = a + 1
  for i = 1, count do
    n = n + redis.call('LREM', KEYS[k], 1, ARGV[a])
    a = a + 1
  end
end
return n`;

/**
 * KEYS: processing, source, delayed set. ARGV: item, delay ms, delayed-member tag, [the item to put
 * back instead: its delivery count lowered, for a nack that keeps the attempt]. To the tail (a priority
 * item: to its place in the priority set), or delayed.
 */
const NACK = `${LUA_REQUEUE}
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local back = ARGV[4] or ARGV[1]
local delay = tonumber(ARGV[2])
if delay > 0 then
  ${LUA_NOW}
  redis.call('ZADD', KEYS[3], now + delay, ARGV[3] .. back)
else
  requeue(KEYS[2], back, false)
end
return 1`;

/** KEYS: processing, dead-letter list. ARGV: item, dead letter. */
const DEAD = `if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1`;

/**
 * Lua: `hand_back(processing, source)`: a whole processing list back to the head of the source, in
 * its order (priority items to their place in the priority set); returns how many.
 */
const LUA_HAND_BACK = `local function hand_back(processing, source)
  local n = 0
  local item = redis.call('RPOP', processing)
  while item do
    requeue(source, item, true)
    n = n + 1
    item = redis.call('RPOP', processing)
  end
  return n
end`;

/**
 * KEYS: consumers, source. ARGV: heartbeat prefix, processing prefix. Every registered consumer
 * whose heartbeat expired: its processing list goes back to the head of the source, in its order,
 * and it is unregistered. Returns the number of messages handed back.
 */
const REAP = `${LUA_REQUEUE}
${LUA_HAND_BACK}
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    n = n + hand_back(ARGV[2] .. id, KEYS[2])
    redis.call('SREM', KEYS[1], id)
  end
end
return n`;

/**
 * REAP over several queues. KEYS: per queue, consumers and source. ARGV: per queue, heartbeat
 * prefix and processing prefix. Returns per queue the number of messages handed back.
 */
const REAP_MANY = `${LUA_REQUEUE}
${LUA_HAND_BACK}
local counts = {}
for q = 0, #KEYS / 2 - 1 do
  local consumers, source = KEYS[q * 2 + 1], KEYS[q * 2 + 2]
  local beat, processing = ARGV[q * 2 + 1], ARGV[q * 2 + 2]
  local n = 0
  for _, id in ipairs(redis.call('SMEMBERS', consumers)) do
    if redis.call('EXISTS', beat .. id) == 0 then
      n = n + hand_back(processing .. id, source)
      redis.call('SREM', consumers, id)
    end
  end
  counts[q + 1] = n
end
return counts`;

/** KEYS: processing, source, consumers, heartbeat. ARGV: consumer id. A closing consumer's reap of itself. */
const RELEASE = `${LUA_REQUEUE}
${LUA_HAND_BACK}
local n = hand_back(KEYS[1], KEYS[2])
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[3], ARGV[1])
return n`;

/** KEYS: processing, source. ARGV: items, in processing order. Those still there go back to the head, in order. */
const RETURN = `${LUA_REQUEUE}
local n = 0
for i = #ARGV, 1, -1 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    requeue(KEYS[2], ARGV[i], true)
    n = n + 1
  end
end
return n`;

/** KEYS: heartbeat, consumers. ARGV: TTL ms, consumer id. Returns 1 when the heartbeat had not lapsed. */
const HEARTBEAT = `local alive = redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'GET')
redis.call('SADD', KEYS[2], ARGV[2])
if alive then return 1 else return 0 end`;

/**
 * HEARTBEAT for several consumers. KEYS: per consumer, heartbeat and consumers. ARGV: TTL ms, then
 * the consumer ids. Returns the 1-based positions of the consumers whose heartbeat had lapsed.
 */
const HEARTBEAT_MANY = `local lapsed = {}
for c = 0, #KEYS / 2 - 1 do
  if not redis.call('SET', KEYS[c * 2 + 1], '1', 'PX', ARGV[1], 'GET') then lapsed[#lapsed + 1] = c + 1 end
  redis.call('SADD', KEYS[c * 2 + 2], ARGV[c + 2])
end
return lapsed`;

type Arg = string | number | Buffer;
export interface ReliableCommands {
  wqueueReliableClaimBuffer(numKeys: 5, ...args: Arg[]): Promise<Buffer[]>;
  wqueueReliableAck(numKeys: 1, ...args: Arg[]): Promise<number>;
  wqueueReliableNack(numKeys: 3, ...args: Arg[]): Promise<number>;
  wqueueReliableDead(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueReliableReap(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueReliableRelease(numKeys: 4, ...args: Arg[]): Promise<number>;
  wqueueReliableReturn(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueReliableHeartbeat(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueReliableClaimManyBuffer(numKeys: number, ...args: Arg[]): Promise<[0 | 1, ...Buffer[]][]>;
  wqueueReliableAckMany(numKeys: number, ...args: Arg[]): Promise<number>;
  wqueueReliableProbe(numKeys: number, ...args: Arg[]): Promise<number[]>;
  wqueueReliableReapMany(numKeys: number, ...args: Arg[]): Promise<number[]>;
  wqueueReliableHeartbeatMany(numKeys: number, ...args: Arg[]): Promise<number[]>;
}
export type ReliableClient = Redis & ReliableCommands;

/** Registers the scripts on a client (EVALSHA, loaded on first use, reloaded after a restart); once per client. */
export function defineReliableScripts(client: Redis): ReliableClient {
  const scripts = { Claim: CLAIM, Ack: ACK, Nack: NACK, Dead: DEAD, Reap: REAP, Release: RELEASE, Return: RETURN, Heartbeat: HEARTBEAT,
    AckMany: ACK_MANY, ClaimMany: CLAIM_MANY, Probe: PROBE, ReapMany: REAP_MANY, HeartbeatMany: HEARTBEAT_MANY };
  for (const [name, lua] of Object.entries(scripts)) client.defineCommand(`wqueueReliable${name}`, { lua });
  return client as ReliableClient;
}
