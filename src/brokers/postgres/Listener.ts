import pg from "pg";
import type { BrokerLog } from "../contract.js";
import { Wakeup } from "../wakeup.js";

/**
 * One connection per broker that LISTENs on the schema's channel (payload: a queue name) and wakes
 * the consumers of that queue. Consumers count notifications per queue (`generation`), so one that
 * arrives while a claim is running is not lost. If the connection drops it reconnects with backoff
 * and then wakes every queue, since notifications sent meanwhile are gone.
 */
export class Listener {
  readonly #signals = new Map<string, QueueSignal>();
  /** Told every queue name notified, consumed here or not (pattern subscriptions: Broker.watchQueues). */
  readonly #anyQueue = new Set<(queue: string) => void>();
  #client: pg.Client | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;

  constructor(
    readonly connectionString: string,
    readonly channel: string,
    readonly log: BrokerLog,
    readonly shownUrl: string,
  ) {}

  /** The queue's signal; the first call starts listening. */
  signal(queue: string): QueueSignal {
    let signal = this.#signals.get(queue);
    if (!signal) {
      signal = new QueueSignal();
      this.#signals.set(queue, signal);
    }
    return signal;
  }

  /** Tells `told` the name of every queue written from now on; returns the unsubscribe. */
  onAnyQueue(told: (queue: string) => void): () => void {
    this.#anyQueue.add(told);
    return () => this.#anyQueue.delete(told);
  }

  /** Resolves once LISTEN is in place (so nothing committed after it goes unnoticed). */
  ready(): Promise<void> {
    this.#ready ??= this.#listen().catch((error) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString });
    client.on("notification", (message) => {
      if (message.channel !== this.channel || message.payload === undefined) return;
      this.#signals.get(message.payload)?.notify();
      for (const told of this.#anyQueue) told(message.payload);
    });
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, new Error("connection ended")));
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel}"`);
    } catch (error) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
      throw error;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.#failures = 0;
  }

  #lost(client: pg.Client, error: Error): void {
    if (this.#closed || this.#client !== client) return;
    this.#client = undefined;
    this.#ready = undefined;
    client.removeAllListeners("end");
    client.end().catch(() => {});
    this.log("warn", `postgres ${this.shownUrl}: the LISTEN connection was lost (${error.message}); reconnecting`);
    this.#reconnect();
  }

  #reconnect(): void {
    if (this.#closed) return;
    const delay = Math.min(5000, 100 * 2 ** this.#failures);
    this.#retryTimer = setTimeout(() => {
      this.ready().then(
        () => {
          for (const signal of this.#signals.values()) signal.notify();
        },
        () => {
          this.#failures += 1;
          this.#reconnect();
        },
      );
    }, delay);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    for (const signal of this.#signals.values()) signal.notify();
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
    }
  }
}

/** Per-queue wake-up; `generation` counts notifications, so a claim can tell one came meanwhile. */
export class QueueSignal {
  readonly wakeup = new Wakeup();
  generation = 0;

  notify(): void {
    this.generation += 1;
    this.wakeup.notify();
  }
}
