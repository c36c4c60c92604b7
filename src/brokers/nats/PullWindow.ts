import type { ConsumeCallback, ConsumerMessages, FetchMessages, JsMsg, Consumer as PullConsumer } from "@nats-io/jetstream";

/** A pull request waits this long on an idle queue before it expires (and another is sent). */
export const PULL_EXPIRES_MS = 30_000;
/** The server sends a heartbeat this often on an idle pull; two missed ones end the request. */
const PULL_HEARTBEAT_MS = 5_000;

interface Fetch {
  readonly batch: number;
  received: number;
  messages: ConsumerMessages | undefined;
  stopped: boolean;
}

/**
 * The pull requests of one consumer in flight, and how many messages they may still bring
 * (`reserved`). Each is a JetStream fetch of `batch` messages (the client's pull request with
 * `expires` and idle heartbeats) whose messages go to `onMessage` synchronously as they arrive, so
 * a batch is buffered within one turn of the event loop. A fetch ends when its batch is full, when
 * it expires on an idle queue, on an error (missed heartbeats, consumer deleted), or by stop();
 * `onEnd` then hears of it, after `reserved` dropped its unfilled part.
 *
 * The caller keeps `reserved` + buffered + handed out <= maxInFlight, so a consumer never holds
 * more unacked messages than that. The client re-pulls a whole batch when it reconnects, which
 * could overshoot: the consumer stops its fetches at a disconnect instead (stopAll) and pulls
 * afresh after the reconnect; a message beyond a fetch's batch is still counted (`excess`) for the
 * caller to give back.
 */
export class PullWindow {
  #reserved = 0;
  readonly #fetches = new Set<Fetch>();

  constructor(
    readonly onMessage: (message: JsMsg, excess: boolean) => void,
    readonly onEnd: (error: Error | undefined) => void,
  ) {}

  /** Messages asked for and not arrived yet. */
  get reserved(): number {
    return this.#reserved;
  }

  /** Fetches in flight. */
  get active(): number {
    return this.#fetches.size;
  }

  /** Sends a pull request for `batch` messages. */
  start(consumer: PullConsumer, batch: number): void {
    const fetch: Fetch = { batch, received: 0, messages: undefined, stopped: false };
    this.#fetches.add(fetch);
    this.#reserved += batch;
    const callback = (message: JsMsg) => {
      fetch.received += 1;
      const excess = fetch.received > fetch.batch;
      if (!excess) this.#reserved -= 1;
      this.onMessage(message, excess);
    };
    // The callback form (typed for consume(), and taken by fetch() too: one implementation in the
    // client) hands over each message as it is parsed, instead of one per turn through an iterator.
    const options: FetchMessages & ConsumeCallback = {
      max_messages: batch,
      expires: PULL_EXPIRES_MS,
      idle_heartbeat: PULL_HEARTBEAT_MS,
      callback,
    };
    consumer
      .fetch(options)
      .then(
        (messages) => {
          fetch.messages = messages;
          if (fetch.stopped) messages.stop();
          return messages.closed();
        },
        (error: unknown) => error as Error,
      )
      .then((error) => this.#end(fetch, error || undefined));
  }

  /** Ends every fetch now; the server drops their pull requests once their inbox is gone. */
  stopAll(): void {
    for (const fetch of this.#fetches) {
      fetch.stopped = true;
      fetch.messages?.stop();
    }
  }

  /**
   * Has the server forget pull requests whose inbox is gone (stopped at close or a disconnect),
   * which it otherwise keeps until they expire. nats-server 2.9 mishandles a nak'd message that it
   * tries to redeliver to such a request when no live one waits: the next delivery reports a
   * delivery count of 1 again, so an attempt would go uncounted. A consumer info request makes it
   * drop them (seen on 2.9.10); on later servers it is a harmless round trip.
   */
  static async dropStale(consumer: PullConsumer | undefined): Promise<void> {
    await consumer?.info().catch(() => undefined);
  }

  #end(fetch: Fetch, error: Error | undefined): void {
    if (!this.#fetches.delete(fetch)) return;
    this.#reserved -= Math.max(0, fetch.batch - fetch.received);
    this.onEnd(fetch.stopped ? undefined : error);
  }
}
