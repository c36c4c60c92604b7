import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";

/**
 * Delayed messages of a Redis list: nack({ delayMs }) and publish({ delayMs }) add the envelope to
 * the sorted set `<queue>:wqueue:delayed`, scored by its due time; the list reader moves due
 * members back to the tail of the list. Kept in Redis, so a delay survives a worker crash (any
 * worker reading the queue moves it), though not a restart of a Redis without persistence.
 *
 * Both scripts take the time from the Redis server (TIME), so workers whose clocks disagree still
 * agree on when a message is due. A sorted set keeps one copy of equal members, and two identical
 * retries must stay two, so each member is `<unique tag>:<envelope>`; the mover strips the tag.
 */
export function delayedKey(queue: string): string {
  return `${queue}:wqueue:delayed`;
}

const NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)";

/** KEYS[1]: delayed set. ARGV: delayMs, member, delayMs, member, ... */
const ADD = `${NOW}
for i = 1, #ARGV, 2 do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[i]), ARGV[i + 1]) end
return #ARGV / 2`;

/**
 * KEYS: delayed set, list, delayed set, list, ... ARGV[1]: most members moved per set per call.
 * Moves due members to their list, oldest due first, and returns for each set the milliseconds
 * until its next member is due: -1 when it is empty, 0 when more are due already.
 */
const MOVE = `${NOW}
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
    redis.call('RPUSH', KEYS[i + 1], unpack(bodies))
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

/** Messages per script call when adding: bounds the arguments of one call. */
const ADD_CHUNK = 500;

/** Adds envelopes to a queue's delayed set, each due `delayMs` after now (Redis time). */
export async function addDelayed(client: Redis, queue: string, entries: [delayMs: number, envelope: Buffer][]) {
  for (let start = 0; start < entries.length; start += ADD_CHUNK) {
    const args: (number | Buffer)[] = [];
    for (const [delayMs, envelope] of entries.slice(start, start + ADD_CHUNK)) {
      args.push(Math.ceil(delayMs), Buffer.concat([Buffer.from(`${tag}.${(++sequence).toString(36)}:`), envelope]));
    }
    await (client as Redis & DelayedCommands).wqueueDelayedAdd(1, delayedKey(queue), ...args);
  }
}

/**
 * Moves every due delayed message of these queues back to its list, in one round trip. Returns,
 * per queue, the milliseconds until its next delayed message is due (Infinity: none).
 */
export async function moveDueDelayed(client: Redis, queues: readonly string[]): Promise<number[]> {
  const keys: string[] = [];
  for (const queue of queues) keys.push(delayedKey(queue), queue);
  const result = await (client as Redis & DelayedCommands).wqueueDelayedMove(keys.length, ...keys, MOVE_LIMIT);
  return result.map((ms) => (ms < 0 ? Number.POSITIVE_INFINITY : ms));
}
