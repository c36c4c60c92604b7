import { MAX_PRIORITY } from "../contract.js";
import { hashPart } from "./cluster-keys.js";

/**
 * Priorities in the reliable list mode. A message published with `priority` 1..9 does not go to
 * the list `<queue>` but to the sorted set `{<queue>}:wqueue:prio` (priorityKey), already tagged (./reliable-item.ts)
 * with an id field `p<priority>-<n>` (n from the queue's id counter) and 0 deliveries, scored
 * `(MAX_PRIORITY - priority) * 2^44 + n`: the lowest score is the highest priority, then the oldest.
 * The claim scripts ZPOPMIN that set before they LPOP the list, so priority messages come first and
 * priority-0 ones keep the list exactly as before: a queue without priorities pays one ZPOPMIN on a
 * missing key per claim, inside the script (no round trip).
 *
 * The priority travels in the id field, so wherever the item goes back (nack, the delayed set, a
 * dead consumer's reaping, a closing consumer's return) LUA_REQUEUE puts it back into the set at its
 * place; items without it go to the list as before. Producers that RPUSH to the list directly
 * publish at priority 0.
 */
export function priorityKey(queue: string): string {
  return `${hashPart(queue) !== queue ? queue : `{${queue}}`}:wqueue:prio`;
}

/**
 * Lua: `prio_key(source)`, the key priorityKey() names. It carries the queue's name as its hash tag
 * in every mode (a queue with a hash tag of its own keeps that), so on a Redis Cluster it lies in the
 * slot of the list `<source>` and the scripts of one queue still touch one slot; on one Redis the
 * braces are only part of a name.
 */
export const LUA_PRIO_KEY = `local function prio_key(source)
  local open = string.find(source, '{', 1, true)
  local close = open and string.find(source, '}', open + 1, true)
  if close and close > open + 1 then return source .. ':wqueue:prio' end
  return '{' .. source .. '}:wqueue:prio'
end`;

/** 2^44: room for 17 * 10^12 ids per priority, and every score stays an exact double (< 2^53). */
const LEVEL = 17_592_186_044_416;

/** The stored form of a priority message: tagged, 0 deliveries so far. */
export function priorityItem(priority: number, sequence: number, payload: Buffer): { score: number; item: Buffer } {
  const item = Buffer.concat([Buffer.from(`\0wqueue:p${priority}-${sequence}:0:`, "latin1"), payload]);
  return { score: (MAX_PRIORITY - priority) * LEVEL + sequence, item };
}

/**
 * Lua: `priority_of(item)`: the priority and sequence of a priority item, nil for any other;
 * `requeue(source, item, head)`: a priority item back into `prio_key(source)` at its place,
 * any other item to the head (head true) or tail of the list `source`.
 */
export const LUA_REQUEUE = `${LUA_PRIO_KEY}
local function priority_of(item)
  if string.byte(item, 1) ~= 0 or string.sub(item, 2, 8) ~= 'wqueue:' then return nil end
  return string.match(item, '^p(%d)%-(%d+):', 9)
end
local function requeue(source, item, head)
  local p, n = priority_of(item)
  if p then
    redis.call('ZADD', prio_key(source), (${MAX_PRIORITY} - tonumber(p)) * ${LEVEL} + tonumber(n), item)
  elseif head then
    redis.call('LPUSH', source, item)
  else
    redis.call('RPUSH', source, item)
  end
end`;
