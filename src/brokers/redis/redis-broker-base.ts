import type { Redis } from "ioredis";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { READER_SILENCE_MS } from "./blocking-reader.js";
import { listRedisQueues } from "./list-queues.js";
import { awaitReplicas } from "./replica-wait.js";

/**
 * What every Redis mode's broker shares: the command connection (publish, settle, CLIENT UNBLOCK),
 * opened by connect() and retried by a later connect() when it failed; the consumers to close with
 * the broker; and an idempotent close() that closes consumers, then the mode's readers, then the
 * command connection. A mode adds its scripts in prepare(), which runs on every connection it opens.
 */
export abstract class RedisBrokerBase<C extends { close(): Promise<void> }> {
  readonly url: string;
  abstract readonly kind: string;
  /** The Redis type of a queue's key in this mode, for listQueues. */
  protected abstract readonly queueKeyType: "list" | "stream";
  #commands: Redis | undefined;
  #connecting: Promise<void> | undefined;
  protected readonly lifecycle: BrokerLifecycle<C>;

  constructor(readonly clients: RedisClients) {
    this.url = clients.url;
    this.lifecycle = new BrokerLifecycle("redis", this.url);
  }

  /** Defines this mode's scripts on a new connection. */
  protected abstract prepare(client: Redis): void;
  /** Closes the mode's blocking readers; runs after every consumer closed. */
  protected async closeReaders(): Promise<void> {}

  get closed(): boolean {
    return this.lifecycle.closed;
  }

  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`broker ${this.url} is closed`));
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

  /** The queues matching `pattern` (subscriptions by pattern; ./list-queues.ts). */
  async listQueues(pattern: string): Promise<string[]> {
    return listRedisQueues(await this.commandClient(), pattern, this.queueKeyType);
  }

  /** After a publish to `queue` on `client`: waits for the replicas that `?wait=N` asks (./replica-wait.ts). */
  protected replicated(client: Redis, queue: string): Promise<void> {
    return awaitReplicas(client, queue, this.clients.replicaWait, this.url);
  }

  /** A blocking connection with this mode's scripts, reconnecting forever, with the silence watchdog. */
  protected openBlocking(role: string): Redis {
    const client = this.clients.background(role, READER_SILENCE_MS);
    this.prepare(client);
    return client;
  }

  /** Idempotent: ends pending receives, closes the readers, then quits the command connection. */
  close(): Promise<void> {
    return this.lifecycle.close(() => this.#shutdown());
  }

  async #shutdown(): Promise<void> {
    await this.closeReaders();
    await this.#connecting?.catch(() => {});
    if (this.#commands) await this.clients.quit(this.#commands);
  }
}
