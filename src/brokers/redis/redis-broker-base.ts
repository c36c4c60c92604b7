import type { Redis } from "ioredis";
import { READER_SILENCE_MS } from "./blocking-reader.js";
import type { RedisClients } from "../shared/redis-clients.js";

/**
 * What every Redis mode's broker shares: the command connection (publish, settle, CLIENT UNBLOCK),
 * opened by connect() and retried by a later connect() when it failed; the consumers to close with
 * the broker; and an idempotent close() that closes consumers, then the mode's readers, then the
 * command connection. A mode adds its scripts in prepare(), which runs on every connection it opens.
 */
export abstract class RedisBrokerBase {
  readonly url: string;
  #commands: Redis | undefined;
  #connecting: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  readonly #consumers = new Set<{ close(): Promise<void> }>();

  constructor(readonly clients: RedisClients) {
    this.url = clients.url;
  }

  /** Defines this mode's scripts on a new connection. */
  protected abstract prepare(client: Redis): void;
  /** Closes the mode's blocking readers; runs after every consumer closed. */
  protected async closeReaders(): Promise<void> {}

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`broker ${this.url} is closed`));
    this.#connecting ??= this.clients.connect("commands").then(
      (client) => {
        this.prepare(client);
        this.#commands = client;
      },
      (error: unknown) => {
        this.#connecting = undefined; // a later connect() tries again
        throw error;
      },
    );
    return this.#connecting;
  }

  /** The command connection, connecting first when needed. */
  async commandClient(): Promise<Redis> {
    if (this.#commands) return this.#commands;
    await this.connect();
    return this.#commands as unknown as Redis;
  }

  /** The command connection of a connected broker: deliveries exist only once it is. */
  get commands(): Redis {
    if (this.#commands === undefined) throw new Error(`broker ${this.url} is not connected`);
    return this.#commands;
  }

  /** A blocking connection with this mode's scripts, reconnecting forever, with the silence watchdog. */
  protected openBlocking(role: string): Redis {
    const client = this.clients.background(role, READER_SILENCE_MS);
    this.prepare(client);
    return client;
  }

  protected track<C extends { close(): Promise<void> }>(consumer: C): C {
    this.#consumers.add(consumer);
    return consumer;
  }

  forget(consumer: { close(): Promise<void> }): void {
    this.#consumers.delete(consumer);
  }

  /** Idempotent: ends pending receives, closes the readers, then quits the command connection. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    await Promise.all([...this.#consumers].map((consumer) => consumer.close()));
    await this.closeReaders();
    await this.#connecting?.catch(() => {});
    if (this.#commands) await this.clients.quit(this.#commands);
  }
}
