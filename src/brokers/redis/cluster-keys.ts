import { ConfigError } from "../../errors.js";

/**
 * How a queue's keys stay in one slot of a Redis Cluster. Redis Cluster hashes only the part of a key
 * between the first `{` and the next `}` when that part is not empty (its hash tag), else the whole
 * key; a script or a multi-key command may only touch keys of one slot.
 */

/** The part of `key` that Redis Cluster hashes to choose its slot. */
export function hashPart(key: string): string {
  const open = key.indexOf("{");
  if (open < 0) return key;
  const close = key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * The prefix of a queue's own keys (processing lists, heartbeats, consumer registry, ids, delayed
 * set, retry set). On a single Redis `<queue>:wqueue:`, as it has always been, so no existing key
 * moves. On a Cluster `{<queue>}:wqueue:`: its hash tag is the queue's name, the very string Redis
 * hashes for the list or stream `<queue>` itself, so producers still push to `<queue>` and every
 * script of one queue touches one slot. A queue name that carries its own hash tag (`{orders}.eu`)
 * keeps it. A name whose braces would split the two apart is refused.
 */
export function queueKeyPrefix(queue: string, cluster: boolean): string {
  if (!cluster) return `${queue}:wqueue:`;
  const prefix = hashPart(queue) !== queue ? `${queue}:wqueue:` : `{${queue}}:wqueue:`;
  if (hashPart(prefix) !== hashPart(queue)) {
    throw new ConfigError(`queue "${queue}" cannot be used on a Redis Cluster: its braces keep its keys from sharing one slot`);
  }
  return prefix;
}

/** True when a script may touch both keys: always on a single Redis; on a Cluster, when they hash alike. */
export function oneSlot(a: string, b: string, cluster: boolean): boolean {
  return !cluster || hashPart(a) === hashPart(b);
}

/**
 * Splits items into groups whose keys (`keyOf`) hash alike, so one script call or pipeline per group
 * reaches one slot, in first-seen order. Not on a Cluster: one group of everything, untouched.
 */
export function bySlot<T>(items: readonly T[], keyOf: (item: T) => string, cluster: boolean): T[][] {
  if (!cluster) return items.length === 0 ? [] : [items as T[]];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const part = hashPart(keyOf(item));
    const group = groups.get(part);
    if (group) group.push(item);
    else groups.set(part, [item]);
  }
  return [...groups.values()];
}
