import type { Redis } from "ioredis";
import { queueKeyPrefix } from "./cluster-keys.js";
import { LUA_NOW } from "./delayed-set.js";

/**
 * The stream mode's Lua scripts. A settle acts only when the entry is still pending for this
 * consumer (dead letter: XACK first): if another consumer claimed and settled it meanwhile, the
 * second settle does nothing, so a message never forks into two. Nothing but publish ever adds an
 * entry to the queue's stream: a retry is the same entry claimed again, so every other consumer group
 * reading the stream sees each message once.
 */

/**
 * KEYS: stream, retry set. ARGV: group, consumer, min idle ms, cursor, count, forget-after ms.
 * Claims up to `count` entries for `consumer`, each with its delivery count (this claim included):
 * first retries that are due (nacked entries kept pending, see NACK), then entries idle at least
 * `min idle` (a dead or closed consumer's), scanning the group's pending list from `cursor` (XPENDING
 * IDLE) and skipping retries not due yet. A claimed entry that was trimmed away is dropped from the
 * pending list by XCLAIM and skipped. Also forgets group members with nothing pending that have been
 * idle past `forget-after` (a live one is recreated by its next XREADGROUP), so dead workers' names
 * do not pile up. Returns { next cursor ("0-0": the scan is done), entries, counts, ms until the next
 * retry is due (-1: none) }, so a reader that did not nack it still claims it in time.
 */
const CLAIM = `${LUA_NOW}
local entries, counts = {}, {}
local limit = tonumber(ARGV[5])
local function take(id, minIdle, pendingCount)
  local c = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], minIdle, id)
  if c[1] and c[1][2] then
    entries[#entries + 1] = c[1]
    counts[#counts + 1] = pendingCount + 1
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', KEYS[2], id)
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if p[1] then take(id, 0, p[1][4]) end
end
local cursor = '0-0'
if #entries < limit then
  local want = limit - #entries
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], ARGV[4], '+', want)
  for _, p in ipairs(pending) do
    if not redis.call('ZSCORE', KEYS[2], p[1]) then take(p[1], ARGV[3], p[4]) end
  end
  if #pending == want then cursor = '(' .. pending[#pending][1] end
end
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[6]) and info['name'] ~= ARGV[2] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
  end
end
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local nextDue = -1
if head[2] then nextDue = math.max(0, tonumber(head[2]) - now) end
return {cursor, entries, counts, nextDue}`;

/**
 * KEYS: stream, retry set. ARGV: group, consumer, id, delay ms. A retry without a copy: the entry
 * stays pending (so other groups of the stream never see it twice) and its id goes into the group's
 * retry set, scored by when it is due; CLAIM takes it back then, counting the delivery. Returns 0 and
 * does nothing when the entry is no longer pending for `consumer` (another consumer claimed it).
 */
const NACK = `if not redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])[1] then return 0 end
${LUA_NOW}
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
return 1`;

/**
 * KEYS: stream. ARGV: group, consumer, ids... Renews the lease of the entries still pending for
 * `consumer` (XCLAIM min-idle 0 JUSTID by the owner resets the idle time and leaves the delivery
 * count alone); entries settled or claimed by another consumer meanwhile are left as they are.
 * Returns how many were renewed.
 */
const EXTEND = `local owned = {}
for i = 3, #ARGV do
  if redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])[1] then owned[#owned + 1] = ARGV[i] end
end
local renewed = #owned
if renewed > 0 then
  owned[renewed + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(owned))
end
return renewed`;

/** KEYS: stream, dead-letter stream. ARGV: group, id, then the dead letter's fields. */
const DEAD = `if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
return 1`;

/**
 * KEYS: per stream, the stream and its retry set. ARGV: group, min idle ms. Read-only: the 1-based
 * positions (stream i at KEYS[2i-1]) of the streams where CLAIM would find something now: a retry
 * due, or an entry pending idle at least `min idle`. For watches, which take nothing themselves.
 */
const CLAIMABLE = `${LUA_NOW}
local found = {}
for i = 1, #KEYS, 2 do
  local hit = #redis.call('ZRANGEBYSCORE', KEYS[i + 1], '-inf', now, 'LIMIT', 0, 1) > 0
  if not hit and redis.call('EXISTS', KEYS[i]) == 1 then
    local p = redis.pcall('XPENDING', KEYS[i], ARGV[1], 'IDLE', ARGV[2], '-', '+', 1)
    hit = type(p) == 'table' and p.err == nil and p[1] ~= nil
  end
  if hit then found[#found + 1] = (i + 1) / 2 end
end
return found`;

/** The sorted set of a group's nacked entries, scored by when each is due again (Redis time, ms). */
export function retryKey(queue: string, group: string, cluster: boolean): string {
  return `${queueKeyPrefix(queue, cluster)}retry:${group}`;
}

type Arg = string | number | Buffer;
/** An entry as Redis returns it: id and flat fields. */
export type RawEntry = [id: Buffer, fields: Buffer[]];
export interface StreamCommands {
  wqueueStreamClaimBuffer(numKeys: 2, ...args: Arg[]): Promise<[cursor: Buffer, entries: RawEntry[], counts: number[], nextDueMs: number]>;
  wqueueStreamNack(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueStreamExtend(numKeys: 1, ...args: Arg[]): Promise<number>;
  wqueueStreamDead(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueStreamClaimable(numKeys: number, ...args: Arg[]): Promise<number[]>;
}
export type StreamClient = Redis & StreamCommands;

/** Registers the scripts on a client (EVALSHA, loaded on first use, reloaded after a restart); once per client. */
export function defineStreamScripts(client: Redis): StreamClient {
  client.defineCommand("wqueueStreamClaim", { lua: CLAIM });
  client.defineCommand("wqueueStreamNack", { lua: NACK });
  client.defineCommand("wqueueStreamExtend", { lua: EXTEND });
  client.defineCommand("wqueueStreamDead", { lua: DEAD });
  client.defineCommand("wqueueStreamClaimable", { lua: CLAIMABLE });
  return client as StreamClient;
}
