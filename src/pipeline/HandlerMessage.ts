import type { Message } from "../app/types.js";
import type { Headers } from "../brokers/contract.js";
import { ConfigError } from "../errors.js";
import type { Outcome } from "./outcome.js";
import type { DeliveryData } from "./run-handler.js";

/** The constant outcome of a success: shared, since outcomes are never mutated. */
export const ACK: Outcome = Object.freeze({ type: "ack" });

/**
 * The message a handler receives. A class rather than an object literal with closures: one
 * allocation per message on the hot path. `decision` records a manual ack() / nack().
 */
export class HandlerMessage implements Message<never> {
  readonly raw: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly id: string;
  readonly queue: string;
  readonly attempt: number;
  readonly key: string | undefined;
  decision: Outcome | undefined;

  constructor(
    readonly body: never,
    data: DeliveryData,
    readonly signal: AbortSignal,
    readonly manual: boolean,
  ) {
    this.raw = data.body;
    this.headers = data.headers;
    this.id = data.id;
    this.queue = data.queue;
    this.attempt = data.attempt;
    this.key = data.key;
  }

  ack(): void {
    this.#decide(ACK, "ack");
  }

  nack(options?: { delayMs?: number }): void {
    this.#decide({ type: "retry", delayMs: Math.max(0, options?.delayMs ?? 0), error: undefined }, "nack");
  }

  #decide(outcome: Outcome, method: string): void {
    if (!this.manual) throw new ConfigError(`message.${method}() needs ackPolicy: "manual" on queue ${this.queue}`);
    this.decision ??= outcome;
  }
}
