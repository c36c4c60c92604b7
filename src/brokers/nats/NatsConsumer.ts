import type { JsMsg, Consumer as PullConsumer } from "@nats-io/jetstream";
import type { BrokerLog, Consumer, Delivery, OutgoingMessage } from "../contract.js";
import { Wakeup } from "../wakeup.js";
import { Backoff, withDeadline } from "./backoff.js";
import type { NatsConnection } from "./NatsConnection.js";
import { NatsDelivery } from "./NatsDelivery.js";
import type { NatsUrl } from "./nats-url.js";
import { PullWindow } from "./PullWindow.js";
import type { StreamResolver } from "./StreamResolver.js";
import { isTransient } from "./transient.js";

/** close() waits this long for dead letters in flight to be stored and their originals termed. */
const SETTLE_WAIT_MS = 2000;
/** Floor of the stale-buffer check, for tiny ack waits. */
const MIN_SWEEP_MS = 50;

/** What a consumer and its deliveries use of their broker, and no more. */
export interface NatsConsumerContext {
  /** Redacted. */
  readonly url: string;
  readonly config: NatsUrl;
  readonly connection: NatsConnection;
  readonly resolver: StreamResolver;
  readonly log: BrokerLog;
  /** The broker's publish: dead letters are copies in the dead-letter queue. */
  publish(queue: string, messages: OutgoingMessage[]): Promise<void>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: NatsConsumer): void;
}

/**
 * One queue's reader: pull requests to the queue's durable consumer (shared by every worker:
 * competing consumers), sized so that never more than `maxInFlight` messages are unacked here:
 * asked for (./PullWindow.ts) + buffered + handed out and not settled <= maxInFlight. A new pull
 * asks for all the free credit, when a receive waits and no pull is out, or (so the next batch is
 * on its way while this one runs) once half the credit is free. Pulls go out only while the
 * caller reads: a receive that ends by abort stops them until the next receive.
 *
 * A message published with delayMs that arrives early is parked on the server (nak with the time
 * left) instead of being handed out. Across a reconnect, pulls are stopped at the disconnect and
 * sent again after it; buffered and handed-out messages stay valid (settling goes by the reply
 * subject). A failed pull (consumer deleted, missed heartbeats) is retried with backoff after the
 * stream and consumer are looked up (and created) again.
 *
 * Long handlers: `leaseMs` is the consumer's ack wait, and `extend` sends `+WPI` (working) for the
 * handed-out deliveries, which restarts their ack wait on the server; settling afterwards is as
 * usual. A message pulled ahead and still buffered here is not running: if no receive takes it
 * within a third of the ack wait (the caller is busy), it is given back with a nak (counted as a
 * delivery, once) rather than left to pass its ack wait and be redelivered elsewhere while this
 * consumer still holds it, and pulling ahead stops until the caller asks again.
 *
 * close() gives every buffered and handed-out unsettled message back with a nak, so it is
 * delivered again at once instead of after ack_wait (stale pull requests dropped first, and after a
 * reconnect too: PullWindow.dropStale). It counts as an attempt, also for a message pulled ahead
 * and never handed out (as on every broker that prefetches).
 */
export class NatsConsumer implements Consumer {
  readonly leaseMs: number;
  readonly #wakeup = new Wakeup();
  readonly #window: PullWindow;
  readonly #held = new Set<NatsDelivery>();
  readonly #settling = new Set<Promise<void>>();
  readonly #unsubscribe: () => void;
  readonly #refillAt: number;
  #buffer: NatsDelivery[] = [];
  #pull: PullConsumer | undefined;
  #preparing = false;
  #failure: unknown;
  readonly #retry = new Backoff();
  #waiting = 0;
  #reading = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #sweep: NodeJS.Timeout | undefined;

  constructor(
    readonly context: NatsConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
    readonly maxInFlight: number,
  ) {
    this.#refillAt = Math.max(1, Math.ceil(maxInFlight / 2));
    this.leaseMs = context.config.ackWaitMs;
    this.#window = new PullWindow(
      (message, excess) => this.#arrived(message, excess),
      (error) => this.#pullEnded(error),
    );
    this.#unsubscribe = context.connection.onEvent((event) => {
      if (event === "disconnect") this.#window.stopAll();
      else void PullWindow.dropStale(this.#pull).then(() => this.#pump());
    });
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    // Not connected yet: connect (or join the attempt in flight), so a failure reaches the caller.
    if (!this.context.connection.connectedOnce && !this.#closing) await this.context.connection.connect();
    this.#reading = true;
    this.#waiting += 1;
    try {
      for (;;) {
        if (this.#buffer.length > 0) return this.#take(max);
        if (this.#closing) return [];
        if (signal.aborted) {
          this.#reading = false;
          return [];
        }
        const failure = this.#failure; // a failed preparation (see #prepare), reported once
        this.#failure = undefined;
        if (failure !== undefined) throw failure;
        this.#pump();
        await this.#wakeup.wait(signal);
      }
    } finally {
      this.#waiting -= 1;
    }
  }

  /**
   * Restarts the ack wait of these handed-out, unsettled deliveries (`+WPI` each, one flush for
   * all). Others (settled, or not this consumer's) are skipped. Rejects when disconnected, or when
   * the server does not confirm within the lease: the next round tries again. The replies travel
   * in order on the one connection, so a settle sent after this is never overtaken by it.
   */
  async extend(deliveries: readonly Delivery[]): Promise<void> {
    const mine = deliveries.filter((delivery): delivery is NatsDelivery => delivery instanceof NatsDelivery && this.#held.has(delivery));
    const running = mine.filter((delivery) => !delivery.settled);
    if (running.length === 0) return;
    if (!this.context.connection.connected) throw new Error(`nats ${this.context.url}: disconnected; cannot extend ${running.length} message(s) of ${this.queue}`);
    for (const delivery of running) delivery.working();
    const { nc } = await this.context.connection.clients();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`nats ${this.context.url}: no answer to extending messages of ${this.queue}`)), this.leaseMs);
    });
    await Promise.race([nc.flush(), late]).finally(() => clearTimeout(timer));
  }

  /** A delivery was acked or nacked: its credit is free. */
  settled(delivery: NatsDelivery): void {
    if (this.#held.delete(delivery)) this.#pump();
  }

  /** A dead letter in flight keeps its credit, and close() lets it finish first. */
  track(delivery: NatsDelivery, settling: Promise<void>): Promise<void> {
    this.#settling.add(settling);
    const done = () => {
      this.#settling.delete(settling);
      this.settled(delivery);
    };
    settling.then(done, done);
    return settling;
  }

  /** Idempotent; gives back what it holds (see the class comment). */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      this.#unsubscribe();
      this.#retry.cancel();
      clearTimeout(this.#sweep);
      this.#window.stopAll();
      this.#wakeup.notify();
      await withDeadline(Promise.allSettled([...this.#settling]), SETTLE_WAIT_MS);
      const unsettled = [...this.#buffer, ...this.#held].filter((delivery) => !delivery.settled);
      this.#buffer = [];
      this.#held.clear();
      if (unsettled.length > 0) await withDeadline(PullWindow.dropStale(this.#pull), SETTLE_WAIT_MS);
      for (const delivery of unsettled) delivery.giveBack();
      this.context.closed(this);
    })();
    return this.#closed;
  }

  #take(max: number): NatsDelivery[] {
    const taken = this.#buffer.splice(0, Math.max(1, Math.floor(max)));
    for (const delivery of taken) this.#held.add(delivery);
    this.#pump();
    return taken;
  }

  #arrived(message: JsMsg, excess: boolean): void {
    const delivery = new NatsDelivery(this, message);
    // Published with a delay and early: parked on the server for the time left.
    const early = (delivery.notBefore ?? 0) - Date.now();
    if (this.#closing || excess || early > 0) delivery.giveBack(Math.max(0, early));
    else if (this.#buffer.push(delivery) === 1) {
      this.#wakeup.notify();
      this.#sweepLater();
    }
  }

  /** Checks the buffer a third of the ack wait from now (see the class comment), while it holds any. */
  #sweepLater(): void {
    if (this.#sweep !== undefined || this.#closing) return;
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.#giveBackStale();
    }, this.#staleMs).unref();
  }

  get #staleMs(): number {
    return Math.max(MIN_SWEEP_MS, Math.floor(this.leaseMs / 3));
  }

  #giveBackStale(): void {
    const cutoff = Date.now() - this.#staleMs;
    const stale = this.#buffer.filter((delivery) => delivery.arrivedAt <= cutoff);
    if (stale.length > 0) {
      this.#buffer = this.#buffer.filter((delivery) => delivery.arrivedAt > cutoff);
      // No pulling ahead until the next receive, and no pull request left open to take them again.
      this.#reading = false;
      this.#window.stopAll();
      void PullWindow.dropStale(this.#pull).then(() => {
        for (const delivery of stale) delivery.giveBack();
      });
      this.context.log("debug", `nats ${this.context.url}: gave back ${stale.length} message(s) of ${this.queue} not taken within ${this.#staleMs} ms`);
    }
    if (this.#buffer.length > 0) this.#sweepLater();
  }

  /** Sends a pull request if there is credit and demand (see the class comment). */
  #pump(): void {
    if (this.#closing || this.#retry.pending || !this.context.connection.connected) return;
    if (this.#waiting === 0 && !this.#reading) return;
    const pull = this.#pull;
    if (pull === undefined) {
      if (this.#waiting > 0) this.#prepare();
      return;
    }
    const free = this.maxInFlight - this.#held.size - this.#buffer.length - this.#window.reserved;
    if (free <= 0 || (this.#window.active > 0 && free < this.#refillAt)) return;
    this.#window.start(pull, free);
  }

  /**
   * Finds (or creates) the stream and consumer. A transient failure (server restarting, connection
   * lost) is retried with backoff; any other (a bad queue name, a refused creation) goes to the
   * waiting receive, which rejects with it.
   */
  #prepare(): void {
    if (this.#preparing) return;
    this.#preparing = true;
    this.context.resolver.consumer(this.queue).then(
      ({ consumer }) => {
        this.#preparing = false;
        this.#pull = consumer;
        this.#pump();
      },
      (error: unknown) => {
        this.#preparing = false;
        if (this.#closing) return;
        if (isTransient(error)) {
          this.#retryLater("cannot look up the consumer of", error as Error);
        } else {
          this.#failure = error;
          this.#wakeup.notify();
        }
      },
    );
  }

  #pullEnded(error: Error | undefined): void {
    if (error === undefined || this.#closing) {
      this.#retry.succeeded();
      this.#pump();
      return;
    }
    // Look the consumer up again before the next pull: it may have been deleted (with its stream).
    this.#pull = undefined;
    this.context.resolver.forget(this.queue);
    this.#retryLater("pull from", error);
  }

  #retryLater(what: string, error: Error): void {
    const delay = this.#retry.failed(() => this.#pump());
    const why = this.context.connection.scrub(error.message);
    const level = this.#retry.failures < 3 ? "debug" : "warn";
    this.context.log(level, `nats ${this.context.url}: ${what} ${this.queue} failed (${why}); retrying in ${delay} ms`);
  }
}
