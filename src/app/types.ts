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
}

export type Handler<Body = unknown> = (message: Message<Body>) => unknown | Promise<unknown>;

export interface RetryOptions {
  /** Deliveries in all, the first included, before the message is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Delay before the first retry; doubles each attempt (with full jitter). Default 1000 ms. */
  baseDelayMs?: number;
  /** Ceiling of the backoff. Default 60000 ms. */
  maxDelayMs?: number;
}

export interface ListenOptions {
  /** Name of a broker from `new WQueue({ brokers })`; default: the default broker. */
  broker?: string;
  /** Body decoding; default "json" (an undecodable payload is dead-lettered, never retried). */
  decode?: BodyFormat;
  /** Handlers of this queue running at once; default: the worker's concurrency. */
  concurrency?: number;
  /** Retry policy, merged over the app's; `false` dead-letters on the first failure. */
  retry?: RetryOptions | false;
  /** Dead-letter queue on the same broker; default `<queue>.dead`. */
  deadLetterQueue?: string;
}

export interface Subscription {
  readonly queue: string;
  readonly handler: Handler<never>;
  readonly options: Readonly<ListenOptions>;
}

export interface PublishOptions {
  broker?: string;
  headers?: Headers;
  key?: string;
  delayMs?: number;
}

export interface WQueueOptions {
  /** Shown in logs; defaults to the module the CLI loaded. */
  name?: string;
  /**
   * Default broker URL, used when neither `--broker` nor WQUEUE_BROKER_URL is given.
   * Without it the default is the embedded SQLite file `sqlite://wqueue.db`.
   */
  broker?: string;
  /** Named brokers for `listenEvents(queue, handler, { broker: name })`. */
  brokers?: Record<string, string>;
  /** App-wide retry policy. */
  retry?: RetryOptions;
}
