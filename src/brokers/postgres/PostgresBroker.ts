import { filterQueues, literalPrefixOf } from "../queue-pattern.js";
import pg from "pg";
import { BrokerUnreachableError, ConfigError } from "../../errors.js";
import type {
  Broker,
  BrokerFeatures,
  BrokerLog,
  BrowsedMessage,
  Consumer,
  ConsumerOptions,
  OutgoingMessage,
  PublishContext,
} from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { redactUrl } from "../url.js";
import { Listener } from "./Listener.js";
import { type Held, MessageTable, type Queryable } from "./MessageTable.js";
import { migrate } from "./migrations.js";
import { PostgresConsumer, type PostgresConsumerContext } from "./PostgresConsumer.js";
import { type PostgresUrl, parsePostgresUrl } from "./postgres-url.js";

/**
 * PostgreSQL as a queue (`postgres://`): rows of `<schema>.messages`, claimed in batches with
 * `FOR UPDATE SKIP LOCKED` under a lease, woken by LISTEN/NOTIFY. At-least-once: a claimed row
 * stays hidden for the lease (extended while its handler runs); a consumer that closes gives its
 * unsettled rows back at once, and one that dies (kill -9) loses nothing: its rows become ready
 * again when the lease runs out, with the attempt counted.
 *
 * The schema is created on first use (see migrations.ts). Acks of one event-loop turn are one
 * statement. publish(queue, messages, { transaction: client }) writes on the caller's client, so
 * the messages commit or roll back with the caller's transaction, and wake consumers on commit.
 */
export class PostgresBroker implements Broker {
  readonly kind = "postgres";
  readonly url: string;
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: true,
    durable: true,
    ordered: true,
    transactionalPublish: true,
  };
  readonly config: PostgresUrl;
  /** Publishing side: commits are durable (synchronous) before publish() resolves. */
  readonly table: MessageTable;
  readonly #pool: pg.Pool;
  #consumerPool: pg.Pool | undefined;
  #consumerTable: MessageTable | undefined;
  readonly #log: BrokerLog;
  readonly #lifecycle: BrokerLifecycle<PostgresConsumer>;
  readonly #consumerContext: PostgresConsumerContext;
  #listener: Listener | undefined;
  #migrated: Promise<void> | undefined;
  #acks: { held: Held; resolve: () => void; reject: (error: unknown) => void }[] = [];
  #lastPurge = 0;

  constructor(url: string, log: BrokerLog = () => {}) {
    this.config = parsePostgresUrl(url);
    this.url = redactUrl(url);
    this.#log = log;
    this.#pool = this.#newPool();
    this.table = new MessageTable(this.#pool, this.config.schema);
    this.#lifecycle = new BrokerLifecycle("postgres", this.url);
    this.#consumerContext = {
      config: this.config,
      table: () => this.consumerTable,
      ready: () => this.ready(),
      listener: () => this.listener(),
      ack: (held) => this.ack(held),
      closed: (consumer) => this.#lifecycle.forget(consumer),
    };
  }

  /**
   * Consuming side (claims, acks, nacks, extensions, dead letters), on connections with
   * `synchronous_commit = off`: they commit without waiting for the WAL flush, about twice the
   * throughput. Safe for at-least-once: a server crash can only undo the last few hundred ms of
   * them (3x wal_writer_delay at most), which gives those messages back to be delivered again;
   * it never loses one (a dead letter's move is one transaction, undone as a whole).
   *
   * Sorts and bitmap scans are off there too, so a claim always reads its queue in id order
   * through an index and stops after the batch. Planned on statistics taken before a burst (a new
   * queue that autovacuum has not analyzed yet looks like one row), it otherwise fetched the
   * queue's every row and sorted them for each batch of 100 (30,000 rows: about 40 ms a claim).
   */
  get consumerTable(): MessageTable {
    if (!this.#consumerTable) {
      this.#consumerPool = this.#newPool("-c synchronous_commit=off -c enable_sort=off -c enable_bitmapscan=off");
      this.#consumerTable = new MessageTable(this.#consumerPool, this.config.schema);
    }
    return this.#consumerTable;
  }

  #newPool(options?: string): pg.Pool {
    const pool = new pg.Pool({ connectionString: this.config.connectionString, max: this.config.poolSize, options });
    // An idle pooled connection that breaks (server restart) is dropped by the pool; without a
    // listener the error would crash the process. The next query opens a new one.
    pool.on("error", (error) => this.#log("warn", `postgres ${this.url}: idle connection lost (${error.message})`));
    return pool;
  }

  connect(): Promise<void> {
    return this.ready();
  }

  /** Connects and brings the schema up to date, once; a failed attempt is retried by the next call. */
  ready(): Promise<void> {
    if (this.#lifecycle.closed) return Promise.reject(new Error(`postgres broker ${this.url} is closed`));
    this.#migrated ??= this.#migrate().catch((error) => {
      this.#migrated = undefined;
      throw error;
    });
    return this.#migrated;
  }

  async #migrate(): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw new BrokerUnreachableError(`cannot connect to PostgreSQL at ${this.url}: ${(error as Error).message}`, { cause: error });
    }
    try {
      await migrate(client, this.config.schema);
    } catch (error) {
      // SQLSTATE class 42 (e.g. 42501, no CREATE privilege): retrying cannot help, say so in one line.
      const code = (error as { code?: unknown }).code;
      if (typeof code === "string" && code.startsWith("42")) {
        throw new ConfigError(`broker ${this.url}: cannot set up schema "${this.config.schema}": ${(error as Error).message}`, { cause: error });
      }
      throw error;
    } finally {
      client.release();
    }
  }

  /** The LISTEN connection, opened with the first consumer (a producer never needs it). */
  listener(): Listener {
    this.#listener ??= new Listener(this.config.connectionString, this.config.schema, this.#log, this.url);
    return this.#listener;
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    return this.#lifecycle.track(new PostgresConsumer(this.#consumerContext, queue, BrokerLifecycle.deadLetterQueue(queue, options)));
  }

  async publish(queue: string, messages: OutgoingMessage[], context: PublishContext = {}): Promise<void> {
    this.#lifecycle.assertOpen();
    if (messages.length === 0) return;
    await this.ready();
    await this.table.insert(queue, messages, context.transaction === undefined ? this.#pool : transactionClient(context.transaction));
  }

  async backlog(queue: string): Promise<number> {
    await this.ready();
    return this.table.countReady(queue);
  }

  /** Queues matching `pattern` (../queue-pattern.ts): the distinct queues with messages not done. */
  async listQueues(pattern: string): Promise<string[]> {
    await this.ready();
    return filterQueues(pattern, await this.table.queueNames(literalPrefixOf(pattern)));
  }

  /**
   * Tells `onWritten` each queue written from any process, from the NOTIFY every insert already
   * sends (the LISTEN connection opens if no consumer opened it). A LISTEN that cannot be set up is
   * left to the listing every `discoverMs`.
   */
  watchQueues(onWritten: (queue: string) => void): () => void {
    const listener = this.listener();
    const off = listener.onAnyQueue(onWritten);
    listener.ready().catch((error: unknown) => this.#log("warn", `cannot LISTEN for new queues (${(error as Error).message}); finding them by listing only`));
    return off;
  }

  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    await this.ready();
    return (await this.table.browse(queue, limit)).map(({ id, body, headers, key }) => ({ id, body, headers, key }));
  }

  /** Acks arriving in the same turn of the event loop are one statement. */
  ack(held: Held): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#acks.length === 0) setImmediate(() => void this.#flushAcks());
      this.#acks.push({ held, resolve, reject });
    });
  }

  async #flushAcks(): Promise<void> {
    const batch = this.#acks.splice(0);
    if (batch.length === 0) return;
    const { retentionMs } = this.config;
    try {
      await this.consumerTable.finish(
        batch.map((ack) => ack.held),
        retentionMs > 0,
      );
      for (const ack of batch) ack.resolve();
    } catch (error) {
      for (const ack of batch) ack.reject(error);
      return;
    }
    // Retained rows are purged from the ack path, at most every tenth of the period (and once a
    // minute at most): an idle worker sends no query for it.
    const every = Math.max(60_000, retentionMs / 10);
    if (retentionMs > 0 && Date.now() - this.#lastPurge >= every) {
      this.#lastPurge = Date.now();
      await this.table.purgeDone(retentionMs).catch((error: Error) => this.#log("warn", `postgres ${this.url}: purging done rows failed (${error.message})`));
    }
  }

  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      await this.#flushAcks();
      await this.#listener?.close();
      await Promise.all([this.#pool.end(), this.#consumerPool?.end()]);
    });
  }
}

/** A node-postgres client (or anything with its query method); a clear error for anything else. */
function transactionClient(value: unknown): Queryable {
  if (typeof value === "object" && value !== null && typeof (value as { query?: unknown }).query === "function") return value as Queryable;
  throw new ConfigError("publish: transaction must be a node-postgres client inside BEGIN ... COMMIT (pg.Client or a pool's client)");
}
