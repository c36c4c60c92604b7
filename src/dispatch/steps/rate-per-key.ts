import type { Delivery } from "../../brokers/contract.js";
import type { CoordinationStore, RateLimit } from "../../coordination/CoordinationStore.js";
import { serializeError } from "../../errors.js";
import type { Logger } from "../../log/logger.js";
import type { Step, StepResult } from "./step.js";

export interface RatePerKeyOptions {
  queue: string;
  store: CoordinationStore;
  limit: RateLimit;
  keyOf: (delivery: Delivery) => string | undefined;
  logger: Logger;
}

/** A store that fails: the message is deferred this long (fail closed, as the queue-wide gate). */
const STORE_DOWN_DELAY_MS = 1000;

/**
 * `rateLimit: { by }`: each key has its own limit, shared by every worker (the key's own bucket in
 * the coordination store). A key is known only once a message is received, so this step runs
 * first in the chain: a message whose key has a permit goes on; one over its key's limit goes back
 * to the broker without counting an attempt, visible again when its key has room, so it holds no
 * slot and one busy key never holds back the others. Deferred messages of one key are spread one
 * interval apart (this worker's own schedule), so they do not all come back at the same moment.
 * One message per key and worker may instead wait here for a permit due within one interval, so
 * the key's permits are used rather than missed between deferrals (it holds one slot that long).
 * Outermost step: a deferral is not counted as a failure, a retry or a handler run.
 */
export function ratePerKey({ queue, store, limit, keyOf, logger }: RatePerKeyOptions): Step {
  const interval = limit.perMs / limit.max;
  /** Per key: the earliest time this worker sends its next deferred message back. */
  const nextSlot = new Map<string, number>();
  let failures = 0;
  /** Keys with a message waiting here for its permit (at most one each). */
  const waiting = new Set<string>();
  const defer = (key: string, waitMs: number): StepResult => {
    const now = Date.now();
    if (nextSlot.size > 10_000) for (const [k, at] of nextSlot) if (at < now) nextSlot.delete(k);
    const slot = Math.max(now + waitMs, nextSlot.get(key) ?? 0);
    nextSlot.set(key, slot + interval);
    return {
      type: "retry",
      delayMs: Math.ceil(slot - now),
      keepAttempt: true,
      error: { name: "KeyRateLimited", message: `key "${key}" is over its rate limit` },
    };
  };
  return (next) => async (delivery, signal) => {
    const key = keyOf(delivery) ?? "";
    try {
      let { granted, waitMs } = await store.admit(`${queue}\u0000key:${key}`, 1, limit);
      failures = 0;
      if (granted === 0 && waitMs <= interval && !waiting.has(key)) {
        waiting.add(key);
        try {
          for (let tries = 0; granted === 0 && waitMs <= interval && tries < 3 && !signal.aborted; tries++) {
            await new Promise((resolve) => setTimeout(resolve, waitMs));
            ({ granted, waitMs } = await store.admit(`${queue}\u0000key:${key}`, 1, limit));
          }
        } finally {
          waiting.delete(key);
        }
      }
      return granted > 0 ? next(delivery, signal) : defer(key, waitMs);
    } catch (error) {
      if (failures++ === 0) {
        logger.warn({ queue, err: serializeError(error) }, `${queue}: the coordination store ${store.url} failed; messages wait for it (rateLimit by key)`);
      }
      return defer(key, STORE_DOWN_DELAY_MS);
    }
  };
}
