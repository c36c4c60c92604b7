import { filterQueues, literalPrefixOf } from "../queue-pattern.js";
import { statSync } from "node:fs";
import { dirname } from "node:path";
import { BrokerUnreachableError, ConfigError } from "../../errors.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import type { Broker, BrokerFeatures, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { type SqliteUrl, parseSqliteUrl } from "../shared/sqlite-url.js";
import { redactUrl } from "../url.js";
import { type Held, MessageStore } from "./MessageStore.js";
import { notifyQueue, QueueWatch } from "./queue-watch.js";
import { SqliteConsumer, type SqliteConsumerContext } from "./SqliteConsumer.js";
import { TakeBatcher } from "./take-batcher.js";

/**
 * Embedded durable queue in one SQLite file (`sqlite://wqueue.db`), shared by every process on the
 * machine that opens the same file. At-least-once: a received row stays hidden for the visibility
 * timeout; a consumer that closes returns its unsettled rows at once, and one that dies (kill -9)
 * loses nothing: its rows become visible again when the timeout passes, with the attempt counted.
 *
 * Waiting consumers wake at once on a publish, nack or close in this process; writes from other
 * processes are noticed by polling `PRAGMA data_version` every `poll` ms, and a delayed or expired
 * row is picked up when its `visible_at` comes. One QueueWatch (./queue-watch.ts) does that waiting
 * for all the broker's idle consumers, with one query over all their queues per wake-up.
 */
export class SqliteBroker implements Broker {
  readonly kind = "sqlite";
  readonly url: string;
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: true,
    keepsAttempt: true,
    durable: true,
    ordered: true,
    priorities: true,
  };
  readonly config: SqliteUrl;
  readonly #lifecycle: BrokerLifecycle<SqliteConsumer>;
  readonly #consumerContext: SqliteConsumerContext;
  #store: MessageStore | undefined;
  readonly #watch: QueueWatch;
  #acks: { held: Held; resolve: () => void; reject: (error: unknown) => void }[] = [];
  #dbClosed = false;

  constructor(url: string) {
    this.config = parseSqliteUrl(url);
    this.url = shownUrl(url, this.config);
    this.#lifecycle = new BrokerLifecycle("SQLite", this.url);
    this.#watch = new QueueWatch(this.config.path, () => this.store(), this.config.pollMs);
    this.#consumerContext = {
      config: this.config,
      store: () => this.store(),
      watch: this.#watch,
      takes: new TakeBatcher(() => this.store(), this.config.visibilityMs),
      ack: (held) => this.ack(held),
      makeVisible: (queue, held, visibleAt, keepAttempt) => this.makeVisible(queue, held, visibleAt, keepAttempt),
      deadLetter: (held, deadQueue, message) => this.deadLetter(held, deadQueue, message),
      closed: (consumer) => this.#lifecycle.forget(consumer),
    };
  }

  async connect(): Promise<void> {
    this.store();
  }

  /** The open database; opened on first use, so publish and receive work without connect(). */
  store(): MessageStore {
    if (this.#dbClosed) throw new Error(`SQLite broker ${this.url} is closed`);
    if (this.#store === undefined) {
      refuseMissingDirectory(this.url, this.config.path);
      try {
        this.#store = new MessageStore(this.config.path);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        throw new BrokerUnreachableError(`cannot open SQLite database ${this.url}: ${why}`, { cause: error });
      }
    }
    return this.#store;
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    return this.#lifecycle.track(new SqliteConsumer(this.#consumerContext, queue, deadLetterQueue));
  }

  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    if (messages.length === 0) return;
    this.store().insert(queue, messages);
    this.notify(queue);
  }

  async backlog(queue: string): Promise<number> {
    return this.store().countVisible(queue);
  }

  /**
   * Queues matching `pattern` (../queue-pattern.ts): the distinct queue names of the table under
   * the pattern's literal prefix. A queue exists here while it holds a row.
   */
  async listQueues(pattern: string): Promise<string[]> {
    return filterQueues(pattern, this.store().queueNames(literalPrefixOf(pattern)));
  }

  async removeWaiting(queue: string, id: string): Promise<boolean> {
    return this.store().removeWaiting(queue, Number(id));
  }

  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    return this.store()
      .browse(queue, limit)
      .map(({ id, body, headers, key }) => ({ id: String(id), body, headers, key }));
  }

  /**
   * Acks arriving in the same turn of the event loop are deleted in one transaction: each commit
   * takes the file's write lock and appends to the WAL, while a DELETE by primary key is cheap.
   */
  ack(held: Held): Promise<void> {
    if (this.#dbClosed) return Promise.reject(new Error(`SQLite broker ${this.url} is closed`));
    return new Promise((resolve, reject) => {
      if (this.#acks.length === 0) setImmediate(() => this.#flushAcks());
      this.#acks.push({ held, resolve, reject });
    });
  }

  /** Nack, or return on close: visible again at `visibleAt` if still held under its receipt. */
  makeVisible(queue: string, held: Held[], visibleAt: number, keepAttempt = false): void {
    this.store().makeVisible(held, visibleAt, keepAttempt);
    this.notify(queue);
  }

  deadLetter(held: Held, deadQueue: string, message: OutgoingMessage): void {
    if (this.store().deadLetter(held, deadQueue, message)) this.notify(deadQueue);
  }

  /** Wakes this process's consumers of `queue`, on every SqliteBroker of the same file. */
  notify(queue: string): void {
    notifyQueue(this.config.path, queue);
  }

  close(): Promise<void> {
    return this.#lifecycle.close(() => {
      this.#flushAcks();
      this.#watch.close();
      this.#dbClosed = true;
      this.#store?.close();
    });
  }

  #flushAcks(): void {
    const batch = this.#acks.splice(0);
    if (batch.length === 0) return;
    try {
      this.store().deleteHeld(batch.map((ack) => ack.held));
      for (const ack of batch) ack.resolve();
    } catch (error) {
      for (const ack of batch) ack.reject(error);
    }
  }
}

/**
 * The URL as logs, the ready line and `push` show it: the absolute path of the file, so a worker
 * and a producer started in different directories can tell whether they share one, and the
 * parameters as given (redacted).
 */
function shownUrl(url: string, config: SqliteUrl): string {
  const queryAt = url.indexOf("?");
  const query = queryAt === -1 ? "" : redactUrl(`sqlite://x${url.slice(queryAt)}`).slice("sqlite://x".length);
  return `sqlite://${config.path}${query}`;
}

/**
 * The file is created if missing, its directory never: a typo in the path must not become a new,
 * empty queue that no producer writes to.
 */
function refuseMissingDirectory(shown: string, path: string): void {
  const directory = dirname(path);
  const stat = statSync(directory, { throwIfNoEntry: false });
  if (stat === undefined) throw new ConfigError(`broker ${shown}: directory ${directory} does not exist (create it, or fix the path)`);
  if (!stat.isDirectory()) throw new ConfigError(`broker ${shown}: ${directory} is not a directory`);
}
