/**
 * The broker adapter contract. Every broker (Redis, SQLite, memory, and later RabbitMQ, Kafka,
 * Kinesis, SQS, NATS) is one folder implementing these three interfaces; nothing above this layer
 * knows which broker it talks to.
 *
 * Flow is pull-with-credit: the dispatcher asks a Consumer for at most `max` deliveries, `max` being
 * the capacity it has free right now, so an adapter never hands out more than can run (no prefetch
 * hoarding). Push brokers (AMQP, Kafka) set their prefetch or pause their fetchers from that credit.
 */

/**
 * How an adapter reports what it does on its own (reconnects, watchdog, recoveries). Messages never
 * contain a password: adapters show URLs through redactUrl.
 */
export type BrokerLog = (level: "debug" | "info" | "warn" | "error", message: string) => void;

/** Headers travel with a message as plain strings on every broker that can carry them. */
export type Headers = Record<string, string>;

/** A message on its way to a broker. `body` is opaque bytes; encoding happened above. */
export interface OutgoingMessage {
  body: Uint8Array;
  headers?: Headers;
  /** Partition / ordering / group key, where the broker has such a thing. */
  key?: string;
  /** Make the message visible only after this many milliseconds. */
  delayMs?: number;
  /** Delivery attempt the message starts at: 1 for a new message, more for a retry re-published. */
  attempt?: number;
  /** MIME type of `body`, for brokers with a field for it (AMQP `content_type`); others ignore it. */
  contentType?: string;
  /**
   * 0..MAX_PRIORITY, higher handled first, FIFO within a priority; 0 (the default) when absent.
   * Only brokers with `features.priorities` receive a value above 0 (WQueue.publish checks).
   */
  priority?: number;
}

/** Highest message priority: ten levels, as RabbitMQ advises (each level costs it a sub-queue). */
export const MAX_PRIORITY = 9;

/** A message seen through Broker.browse(), left where it is. */
export interface BrowsedMessage {
  id: string;
  body: Uint8Array;
  headers: Headers;
  key: string | undefined;
}

/** Why a message is being dead-lettered; stored beside the original payload and headers. */
export interface DeadLetterReason {
  /** Short machine-readable cause: "handler-failed", "undecodable", "invalid", "poison", ... */
  reason: string;
  error?: { name: string; message: string; stack?: string };
}

/**
 * One received message, carrying its own acknowledger (as a Broadway message does).
 *
 * Settling is idempotent: the first of ack / nack / deadLetter wins, later calls resolve and do
 * nothing. A delivery that is never settled is not lost: the broker gets it back when the consumer
 * closes (memory), its visibility timeout passes (SQLite), or, for at-most-once modes, it was
 * already gone when received (documented per adapter).
 */
export interface Delivery {
  /** Broker-assigned id, unique per queue while the message exists. */
  readonly id: string;
  readonly queue: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  /** Partition or shard for logs; undefined on brokers without them. */
  readonly partition: string | undefined;
  /** 1 on first delivery; counts every delivery, including ones after a consumer died. */
  readonly attempt: number;
  /** The handler succeeded: remove the message for good. */
  ack(): Promise<void>;
  /**
   * Give the message back for another attempt, visible again after `delayMs` (default 0).
   * `keepAttempt`: the next delivery carries this attempt again (a pause, not a failure: RateLimited);
   * SQLite, memory and Redis (list and reliable modes) honour it; other adapters count the delivery
   * as they always do.
   */
  nack(options?: { delayMs?: number; keepAttempt?: boolean }): Promise<void>;
  /** Move the message to the dead-letter queue with the reason, and remove it from this queue. */
  deadLetter(reason: DeadLetterReason): Promise<void>;
}

export interface ConsumerOptions {
  /** Where dead letters of this queue go; adapters default it to `<queue>.dead`. */
  deadLetterQueue?: string;
  /**
   * The most messages the caller will hold unsettled at once (the subscription's concurrency).
   * Push brokers size their prefetch window or fetch buffer from it; pull brokers may ignore it.
   */
  maxInFlight?: number;
  /**
   * The caller runs one message per partition at a time (ordering by partition), so a partitioned
   * adapter may hand out no more than that: what it hands out is then exactly what runs, and
   * delivery counts it keeps itself stay exact (records waiting behind a crashing one are not
   * counted as delivered). Adapters without partitions ignore it.
   */
  onePerPartition?: boolean;
}

export interface Consumer {
  /**
   * How long a received, unsettled delivery stays owned by this consumer (hidden from every other
   * consumer, and not handed out again to this one) unless extended: the SQLite visibility, the
   * NATS ack wait, the SQS visibility timeout, the Redis Streams claim idle time. Undefined: owned
   * until it is settled or this consumer dies (a connection, heartbeat or partition lease that the
   * adapter keeps alive itself), so there is nothing to renew.
   *
   * The dispatcher (dispatch/LeaseKeeper.ts) calls `extend` for every delivery it still holds well
   * before this runs out, for as long as it holds it: a handler slower than the lease runs once.
   */
  readonly leaseMs?: number;
  /**
   * Renews the lease of these deliveries (received from this consumer, not yet settled as far as
   * the caller knows) to `leaseMs` from now, in as few broker calls as the broker allows. A
   * delivery settled meanwhile, or already lost to another consumer, is skipped: it never rejects
   * for that. Rejects only when the broker could not be reached (the next round tries again).
   * A settle that follows must not be overtaken by this extension (e.g. a nack's delay).
   */
  extend?(deliveries: readonly Delivery[]): Promise<void>;
  /**
   * Optional: resolves once the consumer's first attempt to subscribe is over (transient failures
   * are retried in the background); rejects with a ConfigError for a queue it can never consume
   * (e.g. a RabbitMQ stream queue). The worker awaits it before `ready`, so such a queue exits 2
   * with one line and nothing taken.
   */
  ready?(): Promise<void>;
  /**
   * Resolves with 1..max deliveries as soon as any are available, or with [] once `signal` aborts.
   * Waits (blocking read, long poll, subscription) while the queue is empty. After an abort it
   * resolves promptly; it may still return deliveries it had already taken from the broker, which
   * the caller then owns like any others (runs or nacks them): nothing is dropped on the floor.
   * One receive at a time per consumer.
   */
  receive(max: number, signal: AbortSignal): Promise<Delivery[]>;
  /**
   * Optional, with `take` (an adapter has both or neither): waits, taking and holding nothing,
   * until the queue may hold a message (a spurious wake-up is allowed: `take` then finds none), or
   * until `signal` aborts or the consumer closes. With the pair, an idle queue holds no credit of
   * the worker's limit: the dispatcher waits here, then takes credit and calls `take`, so one worker
   * serves more queues than its concurrency and a busy queue's batches are not cut to a share of
   * the limit by idle ones (dispatch/SubscriptionLoop.ts). Where the broker can, one wait serves
   * every idle queue of the broker (one query or poll per round, not one per queue). Never rejects
   * for a broker that is down: it resolves, and the `take` that follows reports the error.
   */
  waitForMessages?(signal: AbortSignal): Promise<void>;
  /**
   * Optional, with `waitForMessages`: takes 0..max deliveries that are there now, without waiting
   * for more (a round trip, not a blocking read). [] says the queue looked empty. One call at a time
   * per consumer, never at once with a receive.
   */
  take?(max: number): Promise<Delivery[]>;
  /** Idempotent; ends a pending receive; returns unsettled in-flight messages where it can. */
  close(): Promise<void>;
}

/** What an adapter can do, so the worker, the docs and the conformance suite can tell. */
export interface BrokerFeatures {
  /** "at-least-once": unsettled messages come back; "at-most-once": a received message is gone. */
  delivery: "at-least-once" | "at-most-once";
  /** Messages carry headers, key and attempt natively (or in an envelope the adapter owns). */
  headers: boolean;
  /** nack({ delayMs }) is kept by the broker, surviving a worker crash. */
  durableDelay: boolean;
  /** nack({ keepAttempt: true }) gives a message back without counting the delivery. */
  keepsAttempt?: boolean;
  /** Messages survive a restart of the broker (or of the process, for embedded ones). */
  durable: boolean;
  /** FIFO within a queue (or a partition) when a single consumer reads it. */
  ordered: boolean;
  /**
   * Deliveries carry `partition` (Kafka partition, Kinesis shard) and order matters within it:
   * the dispatcher then runs one message per partition at a time unless the subscription asks
   * for another ordering. Commit-below-the-lowest-unfinished stays the adapter's job.
   */
  partitioned?: boolean;
  /** publish() can write inside the caller's own database transaction (PostgreSQL). */
  transactionalPublish?: boolean;
  /** Messages published with `priority` are received highest first, FIFO within a priority. */
  priorities?: boolean;
}

/** Where a publish runs, for brokers with `transactionalPublish`. */
export interface PublishContext {
  /**
   * The caller's connection, inside its open transaction (a node-postgres client between BEGIN and
   * COMMIT): the messages are written on it, so they commit or roll back with the caller's work.
   */
  transaction?: unknown;
}

export interface Broker {
  /** Scheme-level kind, e.g. "redis-list", "sqlite", "memory". */
  readonly kind: string;
  /** The URL with any password redacted: safe for every log and error line. */
  readonly url: string;
  readonly features: BrokerFeatures;
  /**
   * Opens connections and checks the broker answers. Rejects with BrokerUnreachableError (URL
   * redacted) when it does not. Idempotent.
   */
  connect(): Promise<void>;
  consumer(queue: string, options?: ConsumerOptions): Consumer;
  /** Resolves once the broker has taken every message (durably, where the broker is durable). */
  publish(queue: string, messages: OutgoingMessage[], context?: PublishContext): Promise<void>;
  /**
   * Optional: up to `limit` messages waiting in `queue`, oldest first, without taking them (for
   * `wqueue dead-letters list`). Brokers that cannot look without taking leave it out.
   */
  browse?(queue: string, limit: number): Promise<BrowsedMessage[]>;
  /**
   * Optional: removes the one message `id` (as browse() names it) if it is waiting in `queue`, not
   * held by a consumer; false when it is not there. For a single dead letter's replay or delete;
   * brokers that cannot address one message leave it out.
   */
  removeWaiting?(queue: string, id: string): Promise<boolean>;
  /**
   * Optional: the queues that exist now whose names `pattern` matches (the syntax of
   * brokers/queue-pattern.ts: `tenant.*`, `tenant.>`), for subscriptions by pattern; dead-letter
   * queues and the adapter's own bookkeeping keys left out. The worker calls it at start and then
   * every `discoverMs`. Brokers that cannot list their queues leave it out: a pattern on them is a
   * ConfigError at start.
   */
  listQueues?(pattern: string): Promise<string[]>;
  /**
   * Optional, with listQueues: calls `onWritten` with a queue's name when a message is written to
   * it from any process, where the broker tells that cheaply (PostgreSQL's NOTIFY); returns the
   * unsubscribe. A pattern subscription then lists at once instead of at its next `discoverMs`.
   */
  watchQueues?(onWritten: (queue: string) => void): () => void;
  /** Optional: messages waiting in `queue` (or the consumer lag, on logs), for metrics. */
  backlog?(queue: string): Promise<number>;
  /** Idempotent: calling it twice returns the same promise. Closes every consumer too. */
  close(): Promise<void>;
}

/** Makes a broker (not connected yet) when the app first needs it; `log` hears reconnects and the like. */
export type BrokerFactory = (log: BrokerLog) => Broker | Promise<Broker>;

/**
 * Where a broker of an app comes from: a URL (its scheme picks the adapter, built in or
 * registered with `registerBroker`), a Broker object, or a factory that makes one. A Broker
 * object belongs to the app from then on: the worker connects it and closes it when it stops, so it
 * serves one worker; a factory makes a fresh one each time.
 */
export type BrokerSource = string | Broker | BrokerFactory;
