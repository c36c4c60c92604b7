import type { Redis } from "ioredis";
import type { OutgoingMessage } from "../contract.js";
import { wrap } from "../envelope.js";
import { addDelayed } from "./delayed-set.js";
import { priorityItem, priorityKey } from "./priority-lane.js";
import { reliableKeys } from "./reliable-item.js";

/** Values per RPUSH when a publish is split. */
const RPUSH_CHUNK = 1000;

/**
 * How both list modes (mode=list, mode=reliable) publish: each message as ../envelope.ts makes it
 * (its raw body when it has no headers, key or attempt, so plain consumers can read it), RPUSHed to
 * `queue`; messages with a delay go to the delayed set of ./delayed-set.ts instead. `plain` (the URL's
 * `?plain=true`) drops headers and key, so every message a producer publishes is its raw body; only
 * an attempt past 1 (wqueue's own retries in mode=list) still needs the envelope. Returns the
 * shortest delay among them (Infinity: none), so the caller can wake its reader in time.
 * `priorities` (mode=reliable): a message with `priority` above 0 goes to the queue's priority set
 * instead (./priority-lane.ts), or, delayed, into the delayed set already in that form.
 */
export async function publishToList(client: Redis, queue: string, messages: OutgoingMessage[], plain = false, priorities = false): Promise<number> {
  const now: Buffer[] = [];
  const later: [number, Buffer][] = [];
  const ranked = priorities ? messages.filter((message) => (message.priority ?? 0) > 0).length : 0;
  // One INCRBY names every priority item of the call (their ids come from the claim's counter).
  let sequence = ranked > 0 ? (await client.incrby(reliableKeys(queue, "", client.isCluster).ids, ranked)) - ranked : 0;
  const prioritised: (number | Buffer)[] = [];
  for (const message of messages) {
    let item = wrap(plain ? { body: message.body, attempt: message.attempt } : message);
    const delayed = message.delayMs !== undefined && message.delayMs > 0;
    if (ranked > 0 && (message.priority ?? 0) > 0) {
      const { score, item: tagged } = priorityItem(message.priority as number, ++sequence, item);
      item = tagged;
      if (!delayed) {
        prioritised.push(score, item);
        continue;
      }
    }
    if (delayed) later.push([message.delayMs as number, item]);
    else now.push(item);
  }
  if (prioritised.length > 0) await client.zadd(priorityKey(queue), ...prioritised);
  if (now.length > 0 && now.length <= RPUSH_CHUNK) await client.rpush(queue, ...now);
  else if (now.length > 0) {
    // Chunked so no single command holds Redis for long; pipelined, so still one round trip.
    const pipeline = client.pipeline();
    for (let start = 0; start < now.length; start += RPUSH_CHUNK) {
      pipeline.rpush(queue, ...now.slice(start, start + RPUSH_CHUNK));
    }
    for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
  }
  if (later.length === 0) return Number.POSITIVE_INFINITY;
  await addDelayed(client, queue, later);
  return later.reduce((soonest, [delayMs]) => Math.min(soonest, delayMs), Number.POSITIVE_INFINITY);
}
