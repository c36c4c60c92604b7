import type { DeadLetterReason, Delivery, Headers } from "./contract.js";

/**
 * Base class for adapters' deliveries: makes ack / nack / deadLetter idempotent (the first call
 * wins; later calls return the same promise) so an adapter only writes the three broker operations.
 */
export abstract class SettleOnceDelivery implements Delivery {
  #settled: Promise<void> | undefined;

  abstract readonly id: string;
  abstract readonly queue: string;
  abstract readonly body: Uint8Array;
  abstract readonly headers: Readonly<Headers>;
  abstract readonly key: string | undefined;
  abstract readonly partition: string | undefined;
  abstract readonly attempt: number;

  get settled(): boolean {
    return this.#settled !== undefined;
  }

  ack(): Promise<void> {
    this.#settled ??= this.doAck();
    return this.#settled;
  }

  nack(options?: { delayMs?: number; keepAttempt?: boolean }): Promise<void> {
    this.#settled ??= this.doNack(Math.max(0, options?.delayMs ?? 0), options?.keepAttempt === true);
    return this.#settled;
  }

  deadLetter(reason: DeadLetterReason): Promise<void> {
    this.#settled ??= this.doDeadLetter(reason);
    return this.#settled;
  }

  protected abstract doAck(): Promise<void>;
  /** `keepAttempt`: see Delivery.nack; an adapter that cannot honour it ignores it. */
  protected abstract doNack(delayMs: number, keepAttempt: boolean): Promise<void>;
  protected abstract doDeadLetter(reason: DeadLetterReason): Promise<void>;
}
