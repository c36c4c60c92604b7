import { queueKeyPrefix } from "./cluster-keys.js";
import { delayedKey } from "./delayed-set.js";

/**
 * How the reliable list mode (mode=reliable) knows a message's attempt. Producers push plain items;
 * the first time a consumer takes one, the claim script (./reliable-scripts.ts) rewrites it, inside
 * the same atomic move, as
 *
 *     \0wqueue:<id>:<deliveries>:<the item as pushed>
 *
 * `<id>` comes from the counter `<queue>:wqueue:ids` (unique per queue: the Delivery id), and every
 * later move into a processing list adds one to `<deliveries>`. The count travels with the item
 * wherever it goes (back to the queue on nack, close or reaping; into the delayed set), so a message
 * that comes back from a dead consumer is counted too, identical payloads are counted apart, and no
 * side table can drift from the list or leak. Only items that have been delivered carry the tag;
 * browse() strips it. A producer's item that starts with `\0wqueue:` would be misread: a deliberate
 * act, not an accident, as for the envelope's marker.
 */
export const ITEM_PREFIX = Buffer.from("\0wqueue:");

export interface ReliableItem {
  id: string;
  /** Times the item has been moved into a processing list, this delivery included. */
  deliveries: number;
  /** The item as the producer pushed it: a plain body or an envelope. */
  payload: Buffer;
}

const COLON = 0x3a;

/** Reads a tagged item; undefined for an untagged one (never delivered). */
export function parseItem(stored: Buffer): ReliableItem | undefined {
  const start = ITEM_PREFIX.length;
  if (stored.length < start + 4 || stored.compare(ITEM_PREFIX, 0, start, 0, start) !== 0) return undefined;
  const idEnd = stored.indexOf(COLON, start);
  const countEnd = idEnd < 0 ? -1 : stored.indexOf(COLON, idEnd + 1);
  if (countEnd < 0) return undefined;
  const deliveries = Number(stored.toString("latin1", idEnd + 1, countEnd));
  if (!Number.isInteger(deliveries)) return undefined;
  return { id: stored.toString("latin1", start, idEnd), deliveries, payload: stored.subarray(countEnd + 1) };
}

/** The tagged item with `deliveries` instead of its count (a nack that keeps the attempt: one less). */
export function withDeliveries(item: ReliableItem, deliveries: number): Buffer {
  return Buffer.concat([ITEM_PREFIX, Buffer.from(`${item.id}:${deliveries}:`, "latin1"), item.payload]);
}

/** The item without its tag, as the producer pushed it. */
export function untag(stored: Buffer): Buffer {
  return parseItem(stored)?.payload ?? stored;
}

/** The Redis keys of one queue's reliable mode, and of one consumer of it (on a Cluster: one slot, ./cluster-keys.ts). */
export function reliableKeys(queue: string, consumer: string, cluster: boolean) {
  const base = queueKeyPrefix(queue, cluster);
  return {
    source: queue,
    /** This consumer's messages taken and not yet settled, in delivery order. */
    processing: `${base}processing:${consumer}`,
    /** Exists (with a TTL) while the consumer is alive. */
    heartbeat: `${base}consumer:${consumer}`,
    /** Every consumer that may own a processing list, for the reaper. */
    consumers: `${base}consumers`,
    ids: `${base}ids`,
    delayed: delayedKey(queue, cluster),
    processingPrefix: `${base}processing:`,
    heartbeatPrefix: `${base}consumer:`,
  };
}
export type ReliableKeys = ReturnType<typeof reliableKeys>;
