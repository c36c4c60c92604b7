import type { Consumer, Delivery } from "../brokers/contract.js";
import { serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { type Outcome, settle } from "../pipeline/outcome.js";
import type { AdaptiveLimit } from "./AdaptiveLimit.js";
import type { CreditPool } from "./CreditPool.js";
import { creditFreeIdling } from "./idles-without-credit.js";
import { LeaseKeeper } from "./LeaseKeeper.js";
import type { RateGate } from "./RateGate.js";
import type { Next, StepResult } from "./steps/step.js";

export interface SubscriptionLoopOptions {
  queue: string;
  consumer: Consumer;
  pool: CreditPool;
  /** This queue's own limit of messages fetched or running at once (with `limiter`: its ceiling). */
  concurrency: number;
  /** `concurrency: "auto"`: the limit in force comes from here, fed each message's latency and outcome. */
  limiter?: AdaptiveLimit;
  logger: Logger;
  /** Shared rate limit and pause: asked before each receive, which gets at most what it admits. */
  gate?: RateGate;
  /** The subscription's policies and runner (build-subscription.ts): its result settles the message. */
  chain: Next;
  /** Told how many messages each receive brought. */
  onReceived?: (count: number) => void;
  /**
   * A receive failed with an error that cannot heal by retrying (a ConfigError: a name the broker
   * refuses, a store that rejects the credentials): fetching stops and this is told, once.
   */
  onFatal?: (error: Error) => void;
  /** Fetch into any free slot, not half a batch at a time: a batch subscription's messages wait for more (batch-collector.ts); an adaptive limit is judged by the load it lets in. */
  fillEverySlot?: boolean;
  /** Told once fetching has stopped (no receive pending): a batch waiting for more runs now. */
  onStopFetching?: () => void;
}

/** Only if a chain were built without its retry step: give the message back rather than judge it. */
const UNJUDGED: Outcome = Object.freeze({ type: "retry", delayMs: 0, error: { name: "UnjudgedFailure", message: "no retry step decided this failure" } });

const BACKOFF_START_MS = 100;

const BACKOFF_MAX_MS = 5000;

/**
 * Flow control of one subscription, and nothing else: takes credit (this queue's free slots,
 * within the worker-wide pool), asks the consumer for at most that many messages, runs each
 * through the subscription's chain (policies and runner, composed once in build-subscription.ts),
 * settles it with the result, and keeps the leases of what it holds. Batch size grows while a
 * backlog lasts (1, 2, 4, ... up to the free credit) and drops back to 1 when the queue runs dry,
 * so an idle queue holds one credit, not a share of the pool.
 */
export class SubscriptionLoop {
  readonly #options: SubscriptionLoopOptions;
  readonly #stop = new AbortController();
  /** Aborted at the shutdown deadline; one for all messages, so the hot path allocates none. */
  readonly #deadline = new AbortController();
  readonly #inFlight = new Set<Delivery>();
  #running = 0;
  #slotFreed: (() => void) | undefined;
  /** The fetch loop sleeps until this many slots are free. */
  #wakeAtFree = 1;
  #loop: Promise<void> | undefined;
  readonly #keeper: LeaseKeeper;
  readonly #chain: Next;
  #paused = false;
  /** Aborted by pause(), so that a pending receive returns at once; a new one on each resume. */
  #unpaused = new AbortController();
  /** What receive() listens to: stop or pause. Combined once per resume, not per receive. */
  #receiveSignal: AbortSignal;
  /** Received while paused: held (in flight, leases kept) and handled on resume. */
  readonly #held: Delivery[] = [];

  constructor(options: SubscriptionLoopOptions) {
    this.#options = options;
    this.#chain = options.chain;
    this.#keeper = new LeaseKeeper({ consumer: options.consumer, held: () => this.#inFlight, logger: options.logger, queue: options.queue });
    this.#receiveSignal = AbortSignal.any([this.#stop.signal, this.#unpaused.signal]);
  }

  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Stops fetching until resume(); handlers already running finish. A receive pending now is cut
   * short; what it still brings is held, not handled and not given back (its leases are renewed),
   * and runs on resume. Idempotent.
   */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#unpaused.abort();
  }

  /** Fetches again, first handling what was held. Idempotent. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#unpaused = new AbortController();
    this.#receiveSignal = AbortSignal.any([this.#stop.signal, this.#unpaused.signal]);
    for (const delivery of this.#held.splice(0)) this.#handle(delivery);
    this.#wake();
  }

  /** The last receive failed with this message; undefined once a receive works again. */
  lastError: string | undefined;

  /** Fetching and its last receive worked. */
  get consuming(): boolean {
    return this.#loop !== undefined && !this.#stop.signal.aborted && this.lastError === undefined;
  }

  /** `concurrency: "auto"`: the limit in force now; undefined for a fixed concurrency. */
  get adaptiveLimit(): number | undefined {
    return this.#options.limiter === undefined ? undefined : this.#limit();
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
    this.#wake();
    await this.#loop;
    this.#options.onStopFetching?.();
    // Held by a pause and never run: back to the broker now, as a receive after stop would be.
    await Promise.all(this.#held.splice(0).map((delivery) => this.#inFlight.delete(delivery) && this.#giveBack(delivery)));
  }

  #wake(): void {
    const wake = this.#slotFreed;
    this.#slotFreed = undefined;
    wake?.();
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
    const { consumer, pool, logger } = this.#options;
    const signal = this.#stop.signal;
    const idling = creditFreeIdling(consumer);
    let batch = 1;
    let failures = 0;
    /** The last take came back short: wait for messages, holding no credit, before the next. */
    let dry = true;
    while (!signal.aborted) {
      if (this.#paused) {
        await new Promise<void>((resolve) => {
          this.#slotFreed = resolve;
        });
        continue;
      }
      // Idle without credit where the consumer can, once queues share the pool. A queue alone in
      // its worker keeps a blocking receive instead (one hop less for a message on an idle queue),
      // cut short when another queue joins the pool, whose credit it may be holding.
      const idlesWithoutCredit = pool.sharers > 1 ? idling : undefined;
      if (idlesWithoutCredit && dry) {
        try {
          await idlesWithoutCredit.waitForMessages(this.#receiveSignal);
        } catch (error) {
          // The contract says it resolves instead; a broken adapter must not stop the loop.
          logger.warn({ queue: this.#options.queue, err: serializeError(error) }, "waiting for messages failed; taking anyway");
        }
        dry = false;
        continue; // paused or stopped meanwhile: the checks above come first
      }
      const concurrency = this.#limit();
      const free = concurrency - this.#running;
      // Refill in batches, not one slot at a time: while handlers run, wait until half the batch
      // is free, so a busy queue is read with a few large receives instead of many small ones.
      const refillAt = this.#options.fillEverySlot ? 1 : Math.max(1, Math.ceil(Math.min(batch, concurrency) / 2));
      if (free < refillAt) {
        this.#wakeAtFree = refillAt;
        await new Promise<void>((resolve) => {
          this.#slotFreed = resolve;
        });
        continue;
      }
      const { gate } = this.#options;
      const admitted = gate ? await gate.take(Math.min(free, batch), signal) : Math.min(free, batch);
      // Fair share: a pending receive may sit on its credit while its queue is idle, so a
      // receive takes at most a share; a take returns at once, so it may take all that is free.
      const credit = admitted === 0 ? 0 : await pool.acquire(admitted, signal, idlesWithoutCredit === undefined);
      gate?.refund(admitted - credit);
      if (credit === 0) continue;
      this.#running += credit;
      let deliveries: Delivery[];
      const receivedFrom = Date.now();
      try {
        deliveries = idlesWithoutCredit
          ? await idlesWithoutCredit.take(credit)
          : await consumer.receive(credit, idling ? this.#receiveWhileAlone(pool.sharersChanged) : this.#receiveSignal);
        dry = idlesWithoutCredit !== undefined && deliveries.length < credit;
        failures = 0;
        this.lastError = undefined;
      } catch (error) {
        this.#release(credit);
        gate?.refund(credit);
        if (this.#paused) continue; // cut short by pause(): not a failure
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
      gate?.refund(credit - deliveries.length);
      if (deliveries.length > 0 && gate?.stale(Date.now() - receivedFrom)) {
        // Permits taken before a long receive are stale: take fresh ones, the leases kept meanwhile.
        for (const delivery of deliveries) this.#inFlight.add(delivery);
        this.#keeper.arm();
        await gate.renew(deliveries.length, signal);
        for (const delivery of deliveries) this.#inFlight.delete(delivery);
      }
      this.#options.onReceived?.(deliveries.length);
      // A take costs a round trip whatever its size and holds nothing while idle: it grows faster.
      const growth = idlesWithoutCredit ? 4 : 2;
      batch = deliveries.length >= credit ? Math.min(batch * growth, concurrency) : Math.max(1, deliveries.length);
      if (deliveries.length === 0) continue;
      for (const delivery of deliveries) {
        // A receive that was aborted may still return messages: after stop they go straight back.
        if (signal.aborted) void this.#giveBack(delivery);
        else if (this.#paused) this.#hold(delivery);
        else this.#handle(delivery);
      }
    }
  }

  /** #receiveSignal, or `sharersChanged`: combined once per change of either, not per receive. */
  #receiveWhileAlone(sharersChanged: AbortSignal): AbortSignal {
    const cached = this.#aloneSignal;
    if (cached?.receive === this.#receiveSignal && cached.sharers === sharersChanged) return cached.combined;
    const combined = AbortSignal.any([this.#receiveSignal, sharersChanged]);
    this.#aloneSignal = { receive: this.#receiveSignal, sharers: sharersChanged, combined };
    return combined;
  }

  #aloneSignal: { receive: AbortSignal; sharers: AbortSignal; combined: AbortSignal } | undefined;

  /** The queue's limit in force: fixed, or the adaptive limiter's (never above `concurrency`). */
  #limit(): number {
    const { limiter, concurrency } = this.#options;
    return limiter === undefined ? concurrency : Math.min(concurrency, limiter.limit);
  }

  #hold(delivery: Delivery): void {
    this.#inFlight.add(delivery);
    this.#keeper.arm();
    this.#held.push(delivery);
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
   * Runs one delivery through the chain to its settlement. Not async on purpose: a sync handler on
   * a broker whose ack is immediate goes through without a chain of promises (the hot path).
   */
  #handle(delivery: Delivery): void {
    this.#inFlight.add(delivery);
    this.#keeper.arm();
    let pending: Promise<void> | undefined;
    try {
      const { limiter } = this.#options;
      const result = limiter === undefined ? this.#chain(delivery, this.#deadline.signal) : this.#measured(limiter, delivery);
      pending = result instanceof Promise ? result.then((done) => this.#settle(delivery, done)) : this.#settle(delivery, result);
    } catch (error) {
      this.#settleFailed(delivery, error);
    }
    if (pending) pending.then(() => this.#finish(delivery), (error: unknown) => this.#settleFailed(delivery, error));
    else this.#finish(delivery);
  }

  /** Runs the chain and tells the limiter its latency, the load it started under, and whether it failed. */
  #measured(limiter: AdaptiveLimit, delivery: Delivery): StepResult | Promise<StepResult> {
    const inFlight = this.#inFlight.size;
    const started = performance.now();
    const tell = (result: StepResult) => {
      // A message deferred by its key's rate limit never ran: it says nothing about the handler.
      const deferred = result?.type === "retry" && result.keepAttempt === true && result.pause !== true;
      if (!deferred) limiter.sample(performance.now() - started, inFlight, result !== undefined && result.type !== "ack");
      return result;
    };
    const result = this.#chain(delivery, this.#deadline.signal);
    return result instanceof Promise ? result.then(tell) : tell(result);
  }

  /** undefined: nothing to settle (acked before the run, or given back at the deadline). */
  #settle(delivery: Delivery, result: StepResult): Promise<void> | undefined {
    if (result === undefined || !this.#inFlight.has(delivery)) return undefined;
    return settle(delivery, result.type === "failed" ? UNJUDGED : result);
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

  #release(n: number): void {
    if (n <= 0) return;
    this.#running -= n;
    this.#options.pool.release(n);
    const wake = this.#slotFreed;
    if (wake && (this.#limit() - this.#running >= this.#wakeAtFree || this.#stop.signal.aborted)) {
      this.#slotFreed = undefined;
      wake();
    }
    if (this.#running === 0) {
      for (const resolve of this.#onSettled) resolve();
      this.#onSettled.clear();
    }
  }
}
