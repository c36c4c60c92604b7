import type { AdaptiveLimitOptions } from "../dispatch/AdaptiveLimit.js";
import { ConfigError } from "../errors.js";
import type { ListenOptions } from "./types.js";

/** Where an adaptive limit starts, within its bounds. */
const INITIAL = 10;

/** Checks a queue's `concurrency` option when it is registered: a whole number > 0, "auto" or `{ min, max }`. */
export function checkConcurrency(queue: string, concurrency: ListenOptions["concurrency"], batch: boolean): void {
  if (concurrency === undefined || (Number.isInteger(concurrency) && (concurrency as number) > 0)) return;
  const auto = concurrency === "auto" || (typeof concurrency === "object" && concurrency !== null && !Array.isArray(concurrency));
  if (!auto) throw new ConfigError(`listenEvents("${queue}"): concurrency must be a whole number > 0, "auto" or { min, max }`);
  if (batch) throw new ConfigError(`listenEvents("${queue}"): concurrency "auto" is not for batch handlers (a message's latency there is its batch's wait); give a number`);
  if (typeof concurrency !== "object") return;
  for (const [name, value] of Object.entries(concurrency)) {
    if (name !== "min" && name !== "max") throw new ConfigError(`listenEvents("${queue}"): concurrency { ${name} } is unknown; it takes { min, max }`);
    if (!(Number.isInteger(value) && value > 0)) throw new ConfigError(`listenEvents("${queue}"): concurrency.${name} must be a whole number > 0`);
  }
  if (concurrency.min !== undefined && concurrency.max !== undefined && concurrency.min > concurrency.max) {
    throw new ConfigError(`listenEvents("${queue}"): concurrency.min (${concurrency.min}) is above concurrency.max (${concurrency.max})`);
  }
}

/**
 * The bounds of an adaptive queue in a worker whose limit is `workerLimit` (the pool caps every
 * queue, so `max` never exceeds it); undefined for a fixed concurrency.
 */
export function adaptiveBounds(concurrency: ListenOptions["concurrency"], workerLimit: number): AdaptiveLimitOptions | undefined {
  if (concurrency === undefined || typeof concurrency === "number") return undefined;
  const bounds = concurrency === "auto" ? {} : concurrency;
  const max = Math.min(bounds.max ?? workerLimit, workerLimit);
  const min = Math.min(bounds.min ?? 1, max);
  return { min, max, initial: Math.min(max, Math.max(min, INITIAL)) };
}
