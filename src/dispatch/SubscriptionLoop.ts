import type { Consumer, Delivery } from "../brokers/contract.js";
import { serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { type Outcome, settle } from "../pipeline/outcome.js";
import type { Runner } from "../runners/Runner.js";
import type { CreditPool } from "./CreditPool.js";

export interface SubscriptionLoopOptions {
  /** Identifies the subscription to the runner. */
  id: string;
  queue: string;
  consumer: Consumer;
  runner: Runner;
  pool: CreditPool;
  /** This queue's own limit of messages fetched or running at once. */
  concurrency: number;
  logger: Logger;
}

const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5000;

/**
 * Feeds one subscription: takes credit (this queue's free slots, within the worker-wide pool), asks
 * the consumer for at most that many messages, hands each to the runner and settles it with the
 * outcome. Batch size grows while a backlog lasts (1, 2, 4, ... up to the free credit) and drops
 * back to 1 when the queue runs dry, so an idle queue holds one credit, not a share of the pool.
 */
export class SubscriptionLoop {
  readonly #options: SubscriptionLoopOptions;
  readonly #stop = new AbortController();
  /** Aborted at the shutdown deadline; one for all messages, so the hot path allocates none. */
  readonly #deadline = new AbortController();
  readonly #inFlight = new Set<Delivery>();
  #running = 0;
  #slotFreed: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: SubscriptionLoopOptions) {
    this.#options = options;
  }

  get inFlight(): number {
    return this.#running;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops fetching; resolves once no receive is pending. In-flight handlers go on. */
  async stopFetching(): Promise<void> {
    this.#stop.abort();
    this.#slotFreed?.();
    await this.#loop;
  }

  /** Resolves when every in-flight message is settled. */
  async drained(): Promise<void> {
    while (this.#running > 0) await new Promise<void>((resolve) => this.#onSettled.add(resolve));
  }

  /** At the shutdown deadline: aborts handlers still running and gives their messages back. */
  async abandonInFlight(): Promise<void> {
    const pending = [...this.#inFlight];
    this.#deadline.abort(new Error("worker shutdown deadline passed"));
    // The handlers may never return (hung): their slots are freed here, not when they finish.
    await Promise.allSettled(
      pending.map(async (delivery) => {
        await delivery.nack();
        if (this.#inFlight.delete(delivery)) this.#release(1);
      }),
    );
  }

  readonly #onSettled = new Set<() => void>();

  async #run(): Promise<void> {
    const { consumer, pool, concurrency, logger } = this.#options;
    const signal = this.#stop.signal;
    let batch = 1;
    let failures = 0;
    while (!signal.aborted) {
      const free = concurrency - this.#running;
      if (free <= 0) {
        await new Promise<void>((resolve) => {
          this.#slotFreed = resolve;
        });
        continue;
      }
      const credit = await pool.acquire(Math.min(free, batch), signal);
      if (credit === 0) continue;
      this.#running += credit;
      let deliveries: Delivery[];
      try {
        deliveries = await consumer.receive(credit, signal);
        failures = 0;
      } catch (error) {
        this.#release(credit);
        failures += 1;
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** (failures - 1));
        logger.warn({ queue: this.#options.queue, err: serializeError(error), retryInMs: delay }, "receive failed; retrying");
        await new Promise((resolve) => setTimeout(resolve, delay));
        continue;
      }
      this.#release(credit - deliveries.length);
      batch = deliveries.length >= credit ? Math.min(batch * 2, concurrency) : Math.max(1, deliveries.length);
      for (const delivery of deliveries) {
        // A receive that was aborted may still return messages: after stop they go straight back.
        if (signal.aborted) void this.#giveBack(delivery);
        else void this.#handle(delivery);
      }
    }
  }

  async #giveBack(delivery: Delivery): Promise<void> {
    try {
      await delivery.nack();
    } catch (error) {
      this.#options.logger.error({ queue: delivery.queue, messageId: delivery.id, err: serializeError(error) }, "could not give back a message");
    } finally {
      this.#release(1);
    }
  }

  async #handle(delivery: Delivery): Promise<void> {
    this.#inFlight.add(delivery);
    try {
      const outcome = await this.#options.runner.run(this.#options.id, delivery, this.#deadline.signal);
      if (outcome.type !== "ack") this.#logFailure(delivery, outcome);
      await settle(delivery, outcome);
    } catch (error) {
      this.#options.logger.error(
        { queue: delivery.queue, messageId: delivery.id, attempt: delivery.attempt, err: serializeError(error) },
        "could not settle a message; the broker will redeliver it where it can",
      );
    } finally {
      if (this.#inFlight.delete(delivery)) this.#release(1);
    }
  }

  #logFailure(delivery: Delivery, outcome: Exclude<Outcome, { type: "ack" }>): void {
    const fields = { queue: delivery.queue, messageId: delivery.id, attempt: delivery.attempt };
    if (outcome.type === "retry") {
      this.#options.logger.warn({ ...fields, err: outcome.error, retryInMs: outcome.delayMs }, "handler failed; will retry");
    } else {
      this.#options.logger.error(
        { ...fields, reason: outcome.reason.reason, err: outcome.reason.error },
        `message dead-lettered (${outcome.reason.reason})`,
      );
    }
  }

  #release(n: number): void {
    if (n <= 0) return;
    this.#running -= n;
    this.#options.pool.release(n);
    const wake = this.#slotFreed;
    this.#slotFreed = undefined;
    wake?.();
    if (this.#running === 0) {
      for (const resolve of this.#onSettled) resolve();
      this.#onSettled.clear();
    }
  }
}
