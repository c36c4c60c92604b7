import type { Consumer, Delivery } from "../brokers/contract.js";
import { serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";

/** Extensions are never asked for more often than this, however short the lease. */
const MIN_TICK_MS = 50;

/**
 * Keeps every delivery a subscription holds owned for as long as it holds it: a handler slower
 * than the broker's lease (SQLite visibility, NATS ack wait, SQS visibility, Redis Streams claim
 * idle time) runs once, instead of the broker handing its message out again meanwhile.
 *
 * One timer per subscription, every `leaseMs / 3`, running only while the subscription holds
 * something (arm() on each delivery taken; a tick that finds nothing held stops it): the
 * deliveries that were already held at the previous tick are extended in one `consumer.extend`
 * call. So a delivery is renewed at most 2/3 of a lease after it was received or last renewed,
 * leaving a third for the round trip, a message that is settled within a third of its lease
 * (nearly all) costs nothing, and an idle queue costs no timer (1,000 idle queues: no wake-ups).
 *
 * Consumers without a lease (`leaseMs` undefined: a connection, heartbeat or partition lease keeps
 * their messages owned) get no timer at all.
 */
export class LeaseKeeper {
  readonly #consumer: Consumer;
  readonly #held: () => Iterable<Delivery>;
  readonly #logger: Logger;
  readonly #queue: string;
  #previous = new Set<Delivery>();
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #extending: Promise<void> | undefined;
  #failing = false;

  constructor(options: { consumer: Consumer; held: () => Iterable<Delivery>; logger: Logger; queue: string }) {
    this.#consumer = options.consumer;
    this.#held = options.held;
    this.#logger = options.logger;
    this.#queue = options.queue;
  }

  /** The renewal period, or undefined when the consumer has nothing to renew. */
  get tickMs(): number | undefined {
    const { leaseMs, extend } = this.#consumer;
    if (leaseMs === undefined || extend === undefined) return undefined;
    return Math.max(MIN_TICK_MS, Math.floor(leaseMs / 3));
  }

  /** True while its timer runs: armed and holding something at the last tick. */
  get renewing(): boolean {
    return this.#timer !== undefined;
  }

  /** From now on, arm() starts renewing. */
  start(): void {
    this.#started = this.tickMs !== undefined;
  }

  /** The subscription took a delivery: renew from now on, until a tick finds nothing held. Cheap when already running. */
  arm(): void {
    if (this.#timer !== undefined || !this.#started) return;
    // unref: the keeper alone never keeps a process alive; running handlers and the loop do.
    this.#timer = setInterval(() => this.#tick(), this.tickMs as number).unref();
  }

  /** Stops renewing; resolves once no extension is in flight. */
  async stop(): Promise<void> {
    this.#started = false;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#previous.clear();
    await this.#extending;
  }

  #tick(): void {
    // One extension at a time: a slow broker is not sent a second round while the first waits.
    if (this.#extending !== undefined) return;
    const current = new Set(this.#held());
    if (current.size === 0) {
      clearInterval(this.#timer); // idle: the next arm() starts again
      this.#timer = undefined;
      this.#previous.clear();
      return;
    }
    const due: Delivery[] = [];
    for (const delivery of current) if (this.#previous.has(delivery)) due.push(delivery);
    this.#previous = current;
    if (due.length === 0) return;
    this.#extending = (this.#consumer.extend as NonNullable<Consumer["extend"]>)
      .call(this.#consumer, due)
      .then(
        () => {
          if (this.#failing) this.#logger.info({ queue: this.#queue }, "extending leases works again");
          this.#failing = false;
        },
        (error: unknown) => {
          // Logged once per outage: the next tick tries again, well within the lease.
          if (!this.#failing) {
            this.#logger.warn({ queue: this.#queue, held: due.length, err: serializeError(error) }, "could not extend the leases of running messages; retrying");
          }
          this.#failing = true;
        },
      )
      .finally(() => {
        this.#extending = undefined;
      });
  }
}
