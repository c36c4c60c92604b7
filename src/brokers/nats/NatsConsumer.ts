import type { JsMsg, Consumer as PullConsumer } from "@nats-io/jetstream";
import type { Consumer, Delivery } from "../contract.js";
import { Wakeup } from "../wakeup.js";
import { Backoff, withDeadline } from "./backoff.js";
import type { NatsBroker } from "./NatsBroker.js";
import { NatsDelivery } from "./NatsDelivery.js";
import { PullWindow } from "./PullWindow.js";
import { isTransient } from "./transient.js";

/** close() waits this long for dead letters in flight to be stored and their originals termed. */
const SETTLE_WAIT_MS = 2000;

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
 * close() gives every buffered and handed-out unsettled message back with a nak, so it is
 * delivered again at once instead of after ack_wait (stale pull requests dropped first, and after a
 * reconnect too: PullWindow.dropStale). It counts as an attempt, also for a message pulled ahead
 * and never handed out (as on every broker that prefetches).
 */
export class NatsConsumer implements Consumer {
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

  constructor(
    readonly broker: NatsBroker,
    readonly queue: string,
    readonly deadLetterQueue: string,
    readonly maxInFlight: number,
  ) {
    this.#refillAt = Math.max(1, Math.ceil(maxInFlight / 2));
    this.#window = new PullWindow(
      (message, excess) => this.#arrived(message, excess),
      (error) => this.#pullEnded(error),
    );
    this.#unsubscribe = broker.connection.onEvent((event) => {
      if (event === "disconnect") this.#window.stopAll();
      else void PullWindow.dropStale(this.#pull).then(() => this.#pump());
    });
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    // Not connected yet: connect (or join the attempt in flight), so a failure reaches the caller.
    if (!this.broker.connection.connectedOnce && !this.#closing) await this.broker.connect();
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
      this.#window.stopAll();
      this.#wakeup.notify();
      await withDeadline(Promise.allSettled([...this.#settling]), SETTLE_WAIT_MS);
      const unsettled = [...this.#buffer, ...this.#held].filter((delivery) => !delivery.settled);
      this.#buffer = [];
      this.#held.clear();
      if (unsettled.length > 0) await withDeadline(PullWindow.dropStale(this.#pull), SETTLE_WAIT_MS);
      for (const delivery of unsettled) delivery.giveBack();
      this.broker.forget(this);
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
    else if (this.#buffer.push(delivery) === 1) this.#wakeup.notify();
  }

  /** Sends a pull request if there is credit and demand (see the class comment). */
  #pump(): void {
    if (this.#closing || this.#retry.pending || !this.broker.connection.connected) return;
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
    this.broker.resolver.consumer(this.queue).then(
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
    this.broker.resolver.forget(this.queue);
    this.#retryLater("pull from", error);
  }

  #retryLater(what: string, error: Error): void {
    const delay = this.#retry.failed(() => this.#pump());
    const why = this.broker.connection.scrub(error.message);
    const level = this.#retry.failures < 3 ? "debug" : "warn";
    this.broker.log(level, `nats ${this.broker.url}: ${what} ${this.queue} failed (${why}); retrying in ${delay} ms`);
  }
}
