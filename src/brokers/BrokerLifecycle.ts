import type { ConsumerOptions } from "./contract.js";
import { defaultDeadLetterQueue } from "./dead-letter.js";

/**
 * The part of a broker's life every adapter shares: the consumers it opened, and its closing.
 * Contract: a consumer opened after close() began is closed at once (it receives nothing);
 * close() runs once, closing every open consumer (they give back what they hold) before the
 * broker's own resources; publish and browse on a closed broker fail.
 */
export class BrokerLifecycle<C extends { close(): Promise<void> }> {
  readonly #consumers = new Set<C>();
  /** Set before the first consumer closes, so that nothing opened meanwhile escapes the close. */
  #closing = false;
  #closed: Promise<void> | undefined;

  /** `kind` and the redacted `url` name the broker in the "is closed" error. */
  constructor(
    readonly kind: string,
    readonly url: string,
  ) {}

  /** The queue a consumer of `queue` dead-letters to: the one asked for, else `<queue>.dead`. */
  static deadLetterQueue(queue: string, options: ConsumerOptions): string {
    return options.deadLetterQueue ?? defaultDeadLetterQueue(queue);
  }

  /** True from the moment close() is called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** The open consumers (a broker that tells its consumers of a delayed message looks here). */
  get consumers(): ReadonlySet<C> {
    return this.#consumers;
  }

  /** Tracks a new consumer until it calls forget(); closes it at once when the broker is closing. */
  track(consumer: C): C {
    if (this.#closing) void consumer.close();
    else this.#consumers.add(consumer);
    return consumer;
  }

  /** A consumer that closed itself. */
  forget(consumer: C): void {
    this.#consumers.delete(consumer);
  }

  /** Throws when the broker is closing or closed (publish, browse). */
  assertOpen(): void {
    if (this.#closing) throw new Error(`${this.kind} broker ${this.url} is closed`);
  }

  /** Idempotent: closes the consumers, then `closeOwn` (connections, files), once. */
  close(closeOwn: () => Promise<void> | void): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#closing = true;
    this.#closed = (async () => {
      await Promise.all([...this.#consumers].map((consumer) => consumer.close()));
      await closeOwn();
    })();
    return this.#closed;
  }
}
