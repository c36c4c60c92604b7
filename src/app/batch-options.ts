import { ConfigError } from "../errors.js";
import type { BatchOptions } from "./types.js";

export const DEFAULT_BATCH: Required<BatchOptions> = Object.freeze({ maxSize: 100, maxWaitMs: 50 });
const MAX_SIZE = 10_000;
const MAX_WAIT_MS = 60_000;

/** `listenEvents(..., { batch })` with its defaults, or one ConfigError naming what is wrong. */
export function resolveBatchOptions(queue: string, batch: unknown): Required<BatchOptions> {
  const where = `listenEvents("${queue}")`;
  if (typeof batch !== "object" || batch === null || Array.isArray(batch)) {
    throw new ConfigError(`${where}: batch must be an object { maxSize?, maxWaitMs? }, got ${JSON.stringify(batch)}`);
  }
  const { maxSize = DEFAULT_BATCH.maxSize, maxWaitMs = DEFAULT_BATCH.maxWaitMs, ...rest } = batch as BatchOptions;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new ConfigError(`${where}: batch has unknown option(s) ${unknown.join(", ")} (known: maxSize, maxWaitMs)`);
  if (!(Number.isInteger(maxSize) && maxSize >= 1 && maxSize <= MAX_SIZE)) {
    throw new ConfigError(`${where}: batch.maxSize must be a whole number from 1 to ${MAX_SIZE}, got ${maxSize}`);
  }
  if (!(Number.isInteger(maxWaitMs) && maxWaitMs >= 0 && maxWaitMs <= MAX_WAIT_MS)) {
    throw new ConfigError(`${where}: batch.maxWaitMs must be a whole number of milliseconds from 0 to ${MAX_WAIT_MS}, got ${maxWaitMs}`);
  }
  return { maxSize, maxWaitMs };
}
