import { randomUUID } from "node:crypto";
import { hostname } from "node:os";

/**
 * A name for one consumer in Redis (its reliable-mode processing list, its stream group member):
 * `<hostname>:<pid>:<random>`, so `CLIENT LIST`, `XINFO CONSUMERS` and the keys tell an operator
 * which machine and process it is, and two consumers never share one, even in one process.
 */
export function consumerId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}
