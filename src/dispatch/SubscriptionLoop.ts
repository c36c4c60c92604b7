import type { AckPolicy } from "../app/types.js";
import type { Consumer, Delivery } from "../brokers/contract.js";
import { serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { QueueStats } from "../observability/QueueStats.js";
import type { WorkerObserver } from "../observability/WorkerObserver.js";
import type { MessageTracer } from "../observability/tracing.js";
import { type Outcome, settle } from "../pipeline/outcome.js";
import type { DeliveryData } from "../pipeline/run-handler.js";
import type { Runner } from "../runners/Runner.js";
import type { SuspectSandbox } from "../runners/SuspectSandbox.js";
import type { CreditPool } from "./CreditPool.js";
import { KeyedSequencer } from "./KeyedSequencer.js";
import { LeaseKeeper } from "./LeaseKeeper.js";
import type { OrderingKey } from "./ordering.js";

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
  /** "before" acks on receipt (at-most-once); otherwise the runner's outcome settles the message. */
  ackPolicy?: AckPolicy;
  /** Soft timeout: message.signal aborts, the message is retried, the slot freed. */
  timeoutMs?: number;
  /**
   * A delivery seen more often than this was never finished: a worker died each time it held it.
   * Such a *suspect* runs alone in the sandbox; without one it is dead-lettered as poison at once.
   */
  maxDeliveries?: number;
  /** Where suspects run, isolated from this worker (see runners/SuspectSandbox.ts). */
  sandbox?: SuspectSandbox;
  /** Messages with the same key run one after another. */
  orderingKey?: OrderingKey;
  /** Turns a failure (a timeout) into retry or dead letter, per the subscription's retry policy. */
  failure: (attempt: number, error: Error) => Outcome;
  /** Counters of this subscription (metrics, dashboard). */
  stats?: QueueStats;
  /** Told about every failure, for the dashboard's recent failures. */
  observer?: WorkerObserver;
  /** OpenTelemetry, when installed: a consumer span per message. */
  tracer?: MessageTracer;
  /**
   * A receive failed with an error that cannot heal by retrying (a ConfigError: a name the broker
   * refuses, a store that rejects the credentials): fetching stops and this is told, once.
   */
  onFatal?: (error: Error) => void;
}

/** How a message is run: the runner's run(), or the suspect sandbox. */
type RunFunction = (subscriptionId: string, data: DeliveryData, signal: AbortSignal) => Outcome | Promise<Outcome>;

/** The verdict on a message whose handler kept killing its process. */
function poison(message: string): Outcome {
  return { type: "dead", reason: { reason: "poison", error: { name: "PoisonMessage", message } } };
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
  readonly #sequencer = new KeyedSequencer();
  #running = 0;
  #slotFreed: (() => void) | undefined;
  /** The fetch loop sleeps until this many slots are free. */
  #wakeAtFree = 1;
  #loop: Promise<void> | undefined;
  readonly #keeper: LeaseKeeper;
  readonly #run: RunFunction;

  constructor(options: SubscriptionLoopOptions) {
    this.#options = options;
    this.#run = options.runner.run.bind(options.runner);
    this.#keeper = new LeaseKeeper({ consumer: options.consumer, held: () => this.#inFlight, logger: options.logger, queue: options.queue });
  }

  /** The last receive failed with this message; undefined once a receive works again. */
  lastError: string | undefined;

  /** Fetching and its last receive worked. */
  get consuming(): boolean {
    return this.#loop !== undefined && !this.#stop.signal.aborted && this.lastError === undefined;
  }

  /** Messages received and not yet settled (credit reserved for a pending receive not counted). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  start(): void {
    this.#loop ??= this.#fetchLoop();
    this.#keeper.start();
  }

  /** After drained() or abandonInFlight(): stops renewing leases (nothing is held any more). */
  async close(): Promise<void> {
    await this.#keeper.stop();
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

  async #fetchLoop(): Promise<void> {
    const { consumer, pool, concurrency, logger } = this.#options;
    const signal = this.#stop.signal;
    let batch = 1;
    let failures = 0;
    while (!signal.aborted) {
      const free = concurrency - this.#running;
      // Refill in batches, not one slot at a time: while handlers run, wait until half the batch
      // is free, so a busy queue is read with a few large receives instead of many small ones.
      const refillAt = Math.max(1, Math.ceil(Math.min(batch, concurrency) / 2));
      if (free < refillAt) {
        this.#wakeAtFree = refillAt;
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
        this.lastError = undefined;
      } catch (error) {
        this.#release(credit);
        failures += 1;
        this.lastError = error instanceof Error ? error.message : String(error);
        if ((error as Error | undefined)?.name === "ConfigError") {
          this.#stop.abort();
          this.#options.onFatal?.(error as Error);
          break;
        }
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** (failures - 1));
        logger.warn({ queue: this.#options.queue, err: serializeError(error), retryInMs: delay }, "receive failed; retrying");
        await new Promise((resolve) => setTimeout(resolve, delay));
        continue;
      }
      this.#release(credit - deliveries.length);
      if (this.#options.stats) this.#options.stats.received += deliveries.length;
      batch = deliveries.length >= credit ? Math.min(batch * 2, concurrency) : Math.max(1, deliveries.length);
      for (const delivery of deliveries) {
        // A receive that was aborted may still return messages: after stop they go straight back.
        if (signal.aborted) void this.#giveBack(delivery);
        else this.#handle(delivery);
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

  /**
   * Runs one delivery to its settlement. Not async on purpose: a sync handler on a broker whose ack
   * is immediate goes through without a chain of promises (this is the per-message hot path).
   */
  #handle(delivery: Delivery): void {
    this.#inFlight.add(delivery);
    let pending: Promise<void> | undefined;
    try {
      const key = this.#options.orderingKey?.(delivery);
      pending = (key === undefined ? this.#process(delivery) : this.#sequencer.run(key, () => this.#process(delivery) ?? Promise.resolve())) || undefined;
    } catch (error) {
      this.#settleFailed(delivery, error);
    }
    if (pending) pending.then(() => this.#finish(delivery), (error: unknown) => this.#settleFailed(delivery, error));
    else this.#finish(delivery);
  }

  #finish(delivery: Delivery): void {
    if (this.#inFlight.delete(delivery)) this.#release(1);
  }

  #settleFailed(delivery: Delivery, error: unknown): void {
    this.#options.logger.error(
      { queue: delivery.queue, messageId: delivery.id, attempt: delivery.attempt, err: serializeError(error) },
      "could not settle a message; the broker will redeliver it where it can",
    );
    this.#finish(delivery);
  }

  /** Returns a promise only when something had to wait (async handler, ack round trip, ...). */
  #process(delivery: Delivery): void | Promise<void> {
    // Abandoned at the shutdown deadline while it waited for its key's turn.
    if (!this.#inFlight.has(delivery)) return;
    const { maxDeliveries, ackPolicy, tracer } = this.#options;
    const run = maxDeliveries !== undefined && delivery.attempt > maxDeliveries ? this.#runSuspect : this.#run;
    if (ackPolicy === "before") return delivery.ack().then(() => this.#runAndSettle(delivery, false, tracer, run));
    return this.#runAndSettle(delivery, true, tracer, run);
  }

  #runAndSettle(delivery: Delivery, settleAfter: boolean, tracer: MessageTracer | undefined, run: RunFunction): void | Promise<void> {
    const started = performance.now();
    const outcome = tracer ? tracer.consume(delivery, () => Promise.resolve(this.#runHandler(delivery, run))) : this.#runHandler(delivery, run);
    if (outcome instanceof Promise) return outcome.then((done) => this.#complete(delivery, done, started, settleAfter));
    return this.#complete(delivery, outcome, started, settleAfter);
  }

  #complete(delivery: Delivery, outcome: Outcome, started: number, settleAfter: boolean): void | Promise<void> {
    this.#options.stats?.record(outcome, performance.now() - started);
    if (outcome.type !== "ack") this.#logFailure(delivery, outcome);
    if (settleAfter) return settle(delivery, outcome);
  }

  /**
   * A suspect: delivered more than `maxDeliveries` times without a result, so a worker died each
   * time it held it. That may be its own handler's doing (poison) or only bad company (it was
   * prefetched beside a poison message, or its ack was lost with the worker). It runs alone in the
   * sandbox: its outcome there stands (a success acks it); only a message that kills the sandbox
   * `maxDeliveries` times is dead-lettered as poison. Without a sandbox (a Worker built without an
   * app module path) the verdict is given at once, as before.
   */
  readonly #runSuspect = async (id: string, delivery: DeliveryData, signal: AbortSignal): Promise<Outcome> => {
    const { sandbox, logger, queue } = this.#options;
    const limit = this.#options.maxDeliveries ?? 1;
    const history = `delivered ${delivery.attempt} times without a result`;
    if (!sandbox) return poison(`${history}: its handler kept killing the worker`);
    logger.warn({ queue, messageId: delivery.id, attempt: delivery.attempt }, `suspect message (${history}): running it alone in the suspect sandbox`);
    for (let deaths = 1; ; deaths++) {
      const result = await sandbox.run(id, delivery, signal);
      if (result.kind === "done") return result.outcome;
      if (result.kind === "unavailable") return poison(`${history}, and the suspect sandbox could not run it: ${result.why}`);
      // Given up meanwhile (timeout, shutdown): back to the broker, no verdict.
      if (signal.aborted) return { type: "retry", delayMs: 0, error: { name: "HandlerAbandoned", message: "the worker gave the message up" } };
      if (deaths >= limit) return poison(`${history}, then it killed the suspect sandbox ${deaths} times running alone there (last: ${result.why})`);
      logger.warn({ queue, messageId: delivery.id, deaths, of: limit }, `suspect message killed the suspect sandbox (${result.why}); running it again`);
    }
  };

  /** Runs the handler, racing the soft timeout when there is one. */
  #runHandler(delivery: Delivery, run: RunFunction): Outcome | Promise<Outcome> {
    const { id, timeoutMs } = this.#options;
    if (timeoutMs === undefined) return run(id, delivery, this.#deadline.signal);
    const controller = new AbortController();
    const onDeadline = () => controller.abort(this.#deadline.signal.reason);
    this.#deadline.signal.addEventListener("abort", onDeadline, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => {
        const error = new Error(`handler still running after ${timeoutMs} ms`);
        error.name = "HandlerTimeout";
        controller.abort(error);
        resolve(this.#options.failure(delivery.attempt, error));
      }, timeoutMs);
    });
    return Promise.race([Promise.resolve(run(id, delivery, controller.signal)), timedOut]).finally(() => {
      clearTimeout(timer);
      this.#deadline.signal.removeEventListener("abort", onDeadline);
    });
  }

  #logFailure(delivery: Delivery, outcome: Exclude<Outcome, { type: "ack" }>): void {
    this.#options.observer?.failure(delivery, outcome);
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
    if (wake && (this.#options.concurrency - this.#running >= this.#wakeAtFree || this.#stop.signal.aborted)) {
      this.#slotFreed = undefined;
      wake();
    }
    if (this.#running === 0) {
      for (const resolve of this.#onSettled) resolve();
      this.#onSettled.clear();
    }
  }
}
