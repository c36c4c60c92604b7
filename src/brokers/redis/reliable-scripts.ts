import type { Redis } from "ioredis";
import { LUA_NOW } from "./delayed-set.js";

/**
 * The reliable list mode's Lua scripts. Each is one atomic step, so a consumer that dies between two
 * of them leaves every message in exactly one place: the queue, a processing list, the delayed set
 * or the dead-letter queue. Settling removes the item from the processing list first and does the
 * rest only when it was still there: a message the reaper (or close) has already handed back is
 * not pushed twice. Keys are named by ./reliable-item.ts; the reaper derives per-consumer keys from
 * prefixes, so this mode targets a single Redis, not a Cluster.
 */

/**
 * Tags items (see ./reliable-item.ts), or adds one to the delivery count of tagged ones, in place.
 * KEYS[3]: the id counter, advanced once for all the untagged items of the call.
 */
const TAG = `local P = string.char(0) .. 'wqueue:'
local function count_of(item)
  if string.sub(item, 1, #P) ~= P then return nil end
  local c1 = string.find(item, ':', #P + 1, true)
  local c2 = c1 and string.find(item, ':', c1 + 1, true)
  local n = c2 and tonumber(string.sub(item, c1 + 1, c2 - 1))
  if n then return n, c1, c2 end
  return nil
end
local function tag_all(items)
  local fresh = 0
  for i = 1, #items do if not count_of(items[i]) then fresh = fresh + 1 end end
  local id = fresh > 0 and (redis.call('INCRBY', KEYS[3], fresh) - fresh) or 0
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
 * then moves up to max - adopted more from the head of the source. Returns the tagged items.
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
  local items = redis.call('LPOP', KEYS[1], want)
  if items then for i = 1, #items do out[#out + 1] = items[i] end end
end
tag_all(out)
for i = 1, #out, 1000 do redis.call('RPUSH', KEYS[2], unpack(out, i, math.min(i + 999, #out))) end
return out`;

/** KEYS: processing. ARGV: items. Returns how many were still there. */
const ACK = `local n = 0
for i = 1, #ARGV do n = n + redis.call('LREM', KEYS[1], 1, ARGV[i]) end
return n`;

/**
 * KEYS: processing, source, delayed set. ARGV: item, delay ms, delayed-member tag, [the item to put
 * back instead: its delivery count lowered, for a nack that keeps the attempt]. To the tail, or delayed.
 */
const NACK = `if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local back = ARGV[4] or ARGV[1]
local delay = tonumber(ARGV[2])
if delay > 0 then
  ${LUA_NOW}
  redis.call('ZADD', KEYS[3], now + delay, ARGV[3] .. back)
else
  redis.call('RPUSH', KEYS[2], back)
end
return 1`;

/** KEYS: processing, dead-letter list. ARGV: item, dead letter. */
const DEAD = `if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1`;

/**
 * KEYS: consumers, source. ARGV: heartbeat prefix, processing prefix. Every registered consumer
 * whose heartbeat expired: its processing list goes back to the head of the source, in its order,
 * and it is unregistered. Returns the number of messages handed back.
 */
const REAP = `local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    while redis.call('LMOVE', ARGV[2] .. id, KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end
    redis.call('SREM', KEYS[1], id)
  end
end
return n`;

/** KEYS: processing, source, consumers, heartbeat. ARGV: consumer id. A closing consumer's reap of itself. */
const RELEASE = `local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[3], ARGV[1])
return n`;

/** KEYS: processing, source. ARGV: items, in processing order. Those still there go back to the head, in order. */
const RETURN = `local n = 0
for i = #ARGV, 1, -1 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n`;

/** KEYS: heartbeat, consumers. ARGV: TTL ms, consumer id. Returns 1 when the heartbeat had not lapsed. */
const HEARTBEAT = `local alive = redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'GET')
redis.call('SADD', KEYS[2], ARGV[2])
if alive then return 1 else return 0 end`;

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
}
export type ReliableClient = Redis & ReliableCommands;

/** Registers the scripts on a client (EVALSHA, loaded on first use, reloaded after a restart); once per client. */
export function defineReliableScripts(client: Redis): ReliableClient {
  const scripts = { Claim: CLAIM, Ack: ACK, Nack: NACK, Dead: DEAD, Reap: REAP, Release: RELEASE, Return: RETURN, Heartbeat: HEARTBEAT };
  for (const [name, lua] of Object.entries(scripts)) client.defineCommand(`wqueueReliable${name}`, { lua });
  return client as ReliableClient;
}
