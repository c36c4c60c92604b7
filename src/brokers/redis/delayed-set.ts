import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { bySlot, queueKeyPrefix } from "./cluster-keys.js";
import { LUA_REQUEUE } from "./priority-lane.js";

/**
 * Delayed messages of a Redis list or stream: nack({ delayMs }) and publish({ delayMs }) add the
 * message to the sorted set `<queue>:wqueue:delayed`, scored by its due time; the reader moves due
 * members back: RPUSHed to the tail of a list (the member is the list item: an envelope, or a
 * reliable-mode item), or XADDed to a stream (the member is the entry's fields, framed by
 * ./stream-fields.ts). Kept in Redis, so a delay survives a worker crash (any worker reading the
 * queue moves it), though not a restart of a Redis without persistence.
 *
 * The scripts take the time from the Redis server (TIME), so workers whose clocks disagree still
 * agree on when a message is due. A sorted set keeps one copy of equal members, and two identical
 * retries must stay two, so each member is `<unique tag>:<payload>`; the mover strips the tag.
 */
export function delayedKey(queue: string, cluster: boolean): string {
  return `${queueKeyPrefix(queue, cluster)}delayed`;
}

/** How often readers check delayed sets for retries that other processes scheduled (and may have died with). */
export const DISCOVER_MS = 1000;

/** Lua: `now`, the Redis server's time in ms; shared by every script that schedules a delay. */
export const LUA_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)";
const NOW = LUA_NOW;

/** KEYS[1]: delayed set. ARGV: delayMs, member, delayMs, member, ... */
const ADD = `${NOW}
for i = 1, #ARGV, 2 do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[i]), ARGV[i + 1]) end
return #ARGV / 2`;

/**
 * KEYS: delayed set, target, delayed set, target, ... ARGV[1]: most members moved per set per call;
 * ARGV[2]: "list" or "stream"; ARGV[3]: for streams, the approximate MAXLEN of each XADD (0: none).
 * Moves due members to their target, oldest due first (a reliable-mode priority item returns to its
 * queue's priority set instead: ./priority-lane.ts), and returns for each set the milliseconds
 * until its next member is due: -1 when it is empty, 0 when more are due already.
 */
const MOVE = `${NOW}
${LUA_REQUEUE}
local function unframe(s)
  local fields, pos = {}, 1
  while pos <= #s do
    local colon = string.find(s, ':', pos, true)
    local len = tonumber(string.sub(s, pos, colon - 1))
    fields[#fields + 1] = string.sub(s, colon + 1, colon + len)
    pos = colon + len + 1
  end
  return fields
end
local out = {}
for i = 1, #KEYS, 2 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, ARGV[1])
  if #due > 0 then
    local bodies = {}
    for j = 1, #due do
      local m = due[j]
      local colon = string.find(m, ':', 1, true)
      bodies[j] = colon and string.sub(m, colon + 1) or m
    end
    if ARGV[2] == 'stream' then
      for j = 1, #bodies do
        if ARGV[3] ~= '0' then
          redis.call('XADD', KEYS[i + 1], 'MAXLEN', '~', ARGV[3], '*', unpack(unframe(bodies[j])))
        else
          redis.call('XADD', KEYS[i + 1], '*', unpack(unframe(bodies[j])))
        end
      end
    else
      local listed = {}
      for j = 1, #bodies do
        local b = bodies[j]
        if priority_of(b) then requeue(KEYS[i + 1], b, false) else listed[#listed + 1] = b end
      end
      if #listed > 0 then redis.call('RPUSH', KEYS[i + 1], unpack(listed)) end
    end
    redis.call('ZREM', KEYS[i], unpack(due))
  end
  local head = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if head[2] then out[#out + 1] = math.max(0, tonumber(head[2]) - now) else out[#out + 1] = -1 end
end
return out`;

/** Members moved per set per call: bounds the time one script holds Redis. */
const MOVE_LIMIT = 500;

interface DelayedCommands {
  wqueueDelayedAdd(numKeys: number, ...args: (string | number | Buffer)[]): Promise<number>;
  wqueueDelayedMove(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
}

/** Registers the scripts on a client (EVALSHA, loaded on first use); call once per client. */
export function defineDelayedScripts(client: Redis): void {
  client.defineCommand("wqueueDelayedAdd", { lua: ADD });
  client.defineCommand("wqueueDelayedMove", { lua: MOVE });
}

const tag = randomUUID().slice(0, 8);
let sequence = 0;

/** The unique `<tag>:` a member starts with, for scripts that build members in Redis (tag .. payload). */
export function delayedTag(): string {
  return `${tag}.${(++sequence).toString(36)}:`;
}

/** A sorted-set member for `payload`, unique even when payloads are equal (the mover strips the tag). */
export function delayedMember(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(delayedTag()), payload]);
}

/** Messages per script call when adding: bounds the arguments of one call. */
const ADD_CHUNK = 500;

/** Adds payloads (list items, or framed stream fields) to a queue's delayed set, each due `delayMs` after now (Redis time). */
export async function addDelayed(client: Redis, queue: string, entries: [delayMs: number, payload: Buffer][]) {
  for (let start = 0; start < entries.length; start += ADD_CHUNK) {
    const args: (number | Buffer)[] = [];
    for (const [delayMs, envelope] of entries.slice(start, start + ADD_CHUNK)) {
      args.push(Math.ceil(delayMs), delayedMember(envelope));
    }
    await (client as Redis & DelayedCommands).wqueueDelayedAdd(1, delayedKey(queue, client.isCluster), ...args);
  }
}

/** Where due messages go: the tail of a list, or a new entry of a stream (trimmed to about `maxlen`, 0: not trimmed). */
export type DelayedTarget = { kind: "list" } | { kind: "stream"; maxlen: number };
const LIST: DelayedTarget = { kind: "list" };

/**
 * Moves every due delayed message of these queues back to its list or stream, in one round trip
 * (on a Cluster, one script call per slot, in parallel). Returns the milliseconds until the next
 * delayed message of any of them is due (Infinity: none).
 */
export async function moveDueDelayed(client: Redis, queues: readonly string[], target = LIST): Promise<number> {
  const maxlen = target.kind === "stream" ? target.maxlen : 0;
  const moves = bySlot(queues, (queue) => queue, client.isCluster).map((group) => {
    const keys: string[] = [];
    for (const queue of group) keys.push(delayedKey(queue, client.isCluster), queue);
    return (client as Redis & DelayedCommands).wqueueDelayedMove(keys.length, ...keys, MOVE_LIMIT, target.kind, maxlen);
  });
  let soonest = Number.POSITIVE_INFINITY;
  for (const waits of await Promise.all(moves)) for (const ms of waits) if (ms >= 0 && ms < soonest) soonest = ms;
  return soonest;
}
