import type { BrokerSource } from "../brokers/contract.js";
import type { Headers } from "../brokers/contract.js";

/** How a subscription turns raw bytes into `message.body`. */
export type BodyFormat = "json" | "text" | "bytes";

/** What a handler receives. `body` is decoded per the subscription's `decode` option. */
export interface Message<Body = unknown> {
  readonly body: Body;
  /** The payload exactly as the broker delivered it. */
  readonly raw: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly id: string;
  readonly queue: string;
  /** 1 on first delivery, 2 on the first retry, ... */
  readonly attempt: number;
  readonly key: string | undefined;
  /** Aborted when the worker gives up on this message (shutdown deadline, timeout). */
  readonly signal: AbortSignal;
  /** With ackPolicy "manual": acknowledge the message when the handler returns. */
  ack(): void;
  /** With ackPolicy "manual": give the message back, visible again after `delayMs`. */
  nack(options?: { delayMs?: number }): void;
}

export type Handler<Body = unknown> = (message: Message<Body>) => unknown | Promise<unknown>;

/** `listenEvents(queue, handler, { batch })`. */
export interface BatchOptions {
  /**
   * Most messages per handler call, 1..10000. Default 100. A batch also needs that much credit:
   * it never holds more than the queue's concurrency (see the worker's start-up warning).
   */
  maxSize?: number;
  /**
   * How long the first message of a batch waits for others, 0..60000 ms. Default 50. The batch
   * goes as soon as it is full; a lone message goes after this long.
   */
  maxWaitMs?: number;
}

/**
 * What a batch handler may return: the messages that failed, each with its error. Those alone are
 * retried or dead-lettered, one by one, per the retry policy (RetryLater and DeadLetterNow work
 * as errors here too); every other message of the batch is acked. Returning nothing acks them all;
 * throwing fails every message of the batch.
 */
export interface BatchResult<Body = unknown> {
  failed?: ReadonlyArray<{ readonly message: Message<Body>; readonly error?: unknown }>;
}

/** A handler of `listenEvents(queue, handler, { batch })`: the messages of one batch. */
export type BatchHandler<Body = unknown> = (
  messages: Message<Body>[],
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing (void) acks the batch
) => BatchResult<Body> | void | Promise<BatchResult<Body> | void>;

/**
 * Code around a handler, Koa/Hono style: `async (message, next) => { ...; await next(); ... }`.
 * It runs where the handler runs (event loop, worker thread, suspect sandbox), on the decoded and
 * validated message. `await next()` runs the rest of the chain and the handler and rethrows their
 * error; not calling next() skips the handler (the message is acked); throwing RetryLater or
 * DeadLetterNow decides the message's fate. Order: `app.use` ones first, in registration order,
 * then the queue's `middleware`, then the handler.
 */
export type Middleware = (message: Message<unknown>, next: () => Promise<void>) => unknown | Promise<unknown>;

/**
 * When a message is acknowledged. "after" (default): once the handler succeeded, so nothing is lost
 * (at-least-once). "before": as soon as it is received, before the handler runs (at-most-once: a
 * failure or crash loses it). "manual": the handler decides with message.ack() / message.nack();
 * the decision is applied when the handler returns, and a handler that decided nothing gives the
 * message back.
 */
export type AckPolicy = "after" | "before" | "manual";

/**
 * Messages that must run one after another: "key" (the message key), "partition" (Kafka partition,
 * Kinesis shard: the default on such brokers), { header } (a header's value), a function of the
 * delivery, or "none". Different keys still run in parallel.
 */
export type Ordering =
  | "none"
  | "key"
  | "partition"
  | { header: string }
  | ((delivery: { key: string | undefined; partition: string | undefined; headers: Readonly<Headers> }) => string | undefined);

/** Any Standard Schema validator (zod, valibot, arktype, ...): https://standardschema.dev */
export interface StandardSchema<Output = unknown> {
  readonly "~standard": {
    readonly version: 1;
    /** Type-only: what the validator accepts and returns (Standard Schema's `types`). */
    readonly types?: { readonly input: unknown; readonly output: Output } | undefined;
    readonly validate: (
      value: unknown,
    ) =>
      | { readonly value: Output; readonly issues?: undefined }
      | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { key: PropertyKey }> }> }
      | Promise<
          | { readonly value: Output; readonly issues?: undefined }
          | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { key: PropertyKey }> }> }
        >;
  };
}

/** The type a Standard Schema validator returns (Standard Schema's `InferOutput`): `message.body` with `schema`. */
export type InferOutput<Schema extends StandardSchema> = NonNullable<Schema["~standard"]["types"]>["output"];

/** The type a Standard Schema validator accepts (Standard Schema's `InferInput`): what a typed queue publishes. */
export type InferInput<Schema extends StandardSchema> = NonNullable<Schema["~standard"]["types"]>["input"];

export interface RetryOptions {
  /** Deliveries in all, the first included, before the message is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Delay before the first retry; doubles each attempt (with full jitter). Default 1000 ms. */
  baseDelayMs?: number;
  /** Ceiling of the backoff. Default 60000 ms. */
  maxDelayMs?: number;
}

/** Bounds of an adaptive concurrency limit (`concurrency: { min, max }`). */
export interface AutoConcurrency {
  min?: number;
  max?: number;
}

export interface ListenOptions {
  /** Name of a broker from `new WQueue({ brokers })`; default: the default broker. */
  broker?: string;
  /** Body decoding; default "json" (an undecodable payload is dead-lettered, never retried). */
  decode?: BodyFormat;
  /**
   * Handlers of this queue running at once; default: the worker's concurrency. `"auto"` (or
   * `{ min, max }`): a limit that grows while handler latency stays flat and is cut when latency
   * or failures rise, between `min` (default 1) and `max` (default, and never above, the worker's
   * concurrency); starts at 10 within those bounds. Not with `batch`.
   */
  concurrency?: number | "auto" | AutoConcurrency;
  /** Retry policy, merged over the app's; `false` dead-letters on the first failure. */
  retry?: RetryOptions | false;
  /** Dead-letter queue; default `<queue>.dead`, on the queue's own broker unless deadLetterBroker says. */
  deadLetterQueue?: string;
  /**
   * Name of a broker from `new WQueue({ brokers })` (or "default") that takes this queue's dead
   * letters instead of its own broker: e.g. Kinesis or Kafka records into a Redis or SQS queue,
   * where they can be listed and replayed one by one. Replay publishes back to the queue's broker.
   */
  deadLetterBroker?: string;
  /** When the message is acknowledged; default "after" (the handler succeeded). */
  ackPolicy?: AckPolicy;
  /**
   * Past this, message.signal aborts and the message is retried (error "HandlerTimeout") and its
   * slot freed. On the event loop the handler itself cannot be stopped: honour the signal.
   */
  timeoutMs?: number;
  /** Messages that must run one after another (see Ordering). */
  ordering?: Ordering;
  /** Validates the decoded body; an invalid message is dead-lettered at once (reason "invalid"). */
  schema?: StandardSchema;
  /**
   * Where the handler runs: "event-loop" (default: IO-bound handlers) or "threads" (a pool of
   * worker threads: CPU-bound handlers). `wqueue worker --threads N` / `--model` override it.
   */
  model?: "event-loop" | "threads";
  /**
   * Threads only: past this the handler's thread is terminated and replaced and the message
   * retried ("HandlerTimeout"). The event loop cannot stop a handler: use timeoutMs there.
   */
  hardTimeoutMs?: number;
  /** Middleware of this queue only, run inside the app's (`app.use`) and around the handler. */
  middleware?: Middleware[];
  /**
   * At most `max` messages of this queue start per `perMs`, across every worker of the app
   * (coordinated through the queue's broker when Redis or SQLite, else `coordination`). Messages
   * over the limit wait in the broker: not fetched, not failed, no attempt counted.
   */
  rateLimit?: RateLimitOptions;
  /**
   * A queue pattern only (`listenEvents("tenant.*", ...)`): milliseconds between two listings of
   * the broker's queues, so a queue created while the worker runs is consumed within about this
   * long. Default 5000.
   */
  discoverMs?: number;
}

/**
 * `rateLimit`: at most `max` messages start per `perMs` across every worker; with `by`, per key
 * instead (the message key, a header's value, or a function of the delivery), each key held to its
 * own limit so one busy key never holds back the others. Messages without a key share one limit.
 */
export interface RateLimitOptions {
  max: number;
  perMs: number;
  by?: "key" | { header: string } | ((delivery: { key: string | undefined; partition: string | undefined; headers: Readonly<Headers> }) => string | undefined);
}

/** What a cron handler receives: one tick of its schedule. */
export interface CronTick {
  readonly name: string;
  /** The scheduled time of this tick (the same on every worker; the lease is taken for it). */
  readonly scheduledAt: Date;
  /** Aborted when the worker stops. */
  readonly signal: AbortSignal;
}

export type CronHandler = (tick: CronTick) => unknown | Promise<unknown>;

export interface CronOptions {
  /** IANA time zone the expression is read in (e.g. "Europe/Paris"); default the worker's. */
  timezone?: string;
}

export interface CronJob {
  readonly name: string;
  /** 5 fields, or 6 with seconds first (croner syntax). */
  readonly expression: string;
  readonly handler: CronHandler;
  readonly options: Readonly<CronOptions>;
}

/** `listenEvents(queue, handler, { batch })`: the handler takes `Message[]` (a BatchHandler). */
export interface BatchListenOptions extends ListenOptions {
  batch: BatchOptions;
}

export interface Subscription {
  readonly queue: string;
  readonly handler: Handler<never>;
  readonly options: Readonly<ListenOptions & { batch?: BatchOptions }>;
}

export interface PublishOptions {
  broker?: string;
  headers?: Headers;
  key?: string;
  delayMs?: number;
  /**
   * 0 to 9, higher handled first, FIFO within a priority; 0 when not given. Brokers that order by
   * it: SQLite, Redis reliable lists (the default mode), RabbitMQ with `?maxPriority=9`; a value
   * above 0 elsewhere is refused with a ConfigError naming the broker.
   */
  priority?: number;
  /**
   * Publish inside this open transaction (a node-postgres client between BEGIN and COMMIT): the
   * message commits or rolls back with it. PostgreSQL brokers only; others refuse it.
   */
  transaction?: unknown;
}

export interface WQueueOptions {
  /** Shown in logs; defaults to the module the CLI loaded. */
  name?: string;
  /**
   * Default broker, used when neither `--broker` nor WQUEUE_BROKER_URL is given: a URL, a Broker
   * object or a factory `(log) => Broker` (see BrokerSource). Without it the default is the
   * embedded SQLite file `sqlite://wqueue.db`.
   */
  broker?: BrokerSource;
  /** Named brokers for `listenEvents(queue, handler, { broker: name })`: URLs, Broker objects or factories. */
  brokers?: Record<string, BrokerSource>;
  /** App-wide retry policy. */
  retry?: RetryOptions;
  /**
   * Where cron leases, rate limits and RateLimited pauses are shared by the app's workers when a
   * queue's broker (for cron: the default broker) is neither Redis nor SQLite:
   * `redis://...` or `sqlite://...`.
   */
  coordination?: string;
  /** Size of the thread pool for queues with `model: "threads"`; default the number of CPUs. */
  threads?: number;
}
