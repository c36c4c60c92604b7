import { type BrokerSource, BrokerSet, checkBrokerSource, DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import { DEFAULT_BROKER_URL } from "../brokers/registry.js";
import { ConfigError } from "../errors.js";
import { loadTracer } from "../observability/tracing.js";
import { contentTypeOf, encodeBody } from "./encode-body.js";
import { QueueHandle } from "./QueueHandle.js";
import { checkCoordinationUrl } from "../coordination/open-coordination-store.js";
import { checkConcurrency } from "./adaptive-concurrency.js";
import { resolveBatchOptions } from "./batch-options.js";
import { checkQueuePattern, isQueuePattern } from "../brokers/queue-pattern.js";
import { checkedPriority } from "./message-priority.js";
import type {
  BatchHandler,
  BatchListenOptions,
  BatchOptions,
  CronHandler,
  CronJob,
  CronOptions,
  Handler,
  InferInput,
  InferOutput,
  ListenOptions,
  Message,
  Middleware,
  PublishOptions,
  StandardSchema,
  Subscription,
  WQueueOptions,
} from "./types.js";

/** Marks WQueue instances across copies of the module (a linked checkout, src vs dist). */
const APP_BRAND = Symbol.for("wqueue.app");

/**
 * The default broker: `--broker` (passed in), else WQUEUE_BROKER_URL, else the app's (a URL, a
 * Broker or a factory), else SQLite.
 */
export function resolveDefaultBrokerUrl(app: WQueue, override?: string): BrokerSource {
  return override ?? process.env.WQUEUE_BROKER_URL ?? app.options.broker ?? DEFAULT_BROKER_URL;
}

/**
 * An app: the registry of subscriptions (queue -> handler) plus a publish helper.
 * Creating one and registering handlers opens no connection; a Worker does that when it starts,
 * which is what lets threads and child processes import the same module to find handlers.
 */
export class WQueue {
  readonly [APP_BRAND] = true;
  readonly options: Readonly<WQueueOptions>;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #middleware: Middleware[] = [];
  readonly #crons = new Map<string, CronJob>();
  #ownBrokers: BrokerSet | undefined;
  #lentBrokers: BrokerSet | undefined;

  constructor(options: WQueueOptions = {}) {
    this.options = { ...options };
    if (options.broker !== undefined) checkBrokerSource("new WQueue({ broker })", options.broker);
    for (const [name, source] of Object.entries(options.brokers ?? {})) {
      if (name === DEFAULT_BROKER_NAME) {
        throw new ConfigError(`broker name "${DEFAULT_BROKER_NAME}" is reserved: use the "broker" option for it`);
      }
      checkBrokerSource(`new WQueue({ brokers: { ${name} } })`, source);
    }
    if (options.coordination !== undefined) checkCoordinationUrl(options.coordination);
  }

  static isApp(value: unknown): value is WQueue {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[APP_BRAND] === true;
  }

  get subscriptions(): Subscription[] {
    return [...this.#subscriptions.values()];
  }

  /** Cron jobs, in the order app.cron() registered them. */
  get crons(): CronJob[] {
    return [...this.#crons.values()];
  }

  /**
   * Runs `handler` on the schedule `expression` (5 fields, or 6 with seconds first; croner syntax),
   * once per tick across every worker process and host of the app: each tick is a lease in the
   * coordination store (the default broker when Redis or SQLite, else `coordination`). Ticks missed
   * while no worker ran are not replayed. The expression is checked when a worker starts (croner is
   * loaded then). Returns the handler.
   */
  cron(name: string, expression: string, handler: CronHandler, options: CronOptions = {}): CronHandler {
    if (typeof name !== "string" || name.length === 0) throw new ConfigError("app.cron: name must be a non-empty string");
    if (typeof expression !== "string" || expression.trim() === "") throw new ConfigError(`app.cron("${name}"): expression must be a cron expression string`);
    if (typeof handler !== "function") throw new ConfigError(`app.cron("${name}"): handler must be a function`);
    if (options.timezone !== undefined && (typeof options.timezone !== "string" || options.timezone === "")) {
      throw new ConfigError(`app.cron("${name}"): timezone must be an IANA time zone name such as "Europe/Paris"`);
    }
    if (this.#crons.has(name)) throw new ConfigError(`app.cron("${name}"): a cron job with this name is already registered`);
    this.#crons.set(name, { name, expression, handler, options: { ...options } });
    return handler;
  }

  /** Middleware of every queue, in the order app.use() registered it. */
  get middleware(): readonly Middleware[] {
    return this.#middleware;
  }

  /**
   * Adds middleware that runs around every queue's handler (see Middleware), outside each queue's
   * own. Call it at the top level of the app module, like listenEvents: worker threads and the
   * suspect sandbox import the module to find both. Returns the app, for chaining.
   */
  use(...middleware: Middleware[]): this {
    for (const each of middleware) {
      if (typeof each !== "function") throw new ConfigError("app.use: middleware must be a function (message, next) => ...");
    }
    this.#middleware.push(...middleware);
    return this;
  }

  /**
   * Registers `handler` for `queue` and returns it unchanged. One handler per queue and broker.
   * `queue` may be a pattern (`tenant.*`, `tenant.>`: brokers/queue-pattern.ts) on a broker that
   * lists its queues: every matching queue, including ones created while the worker runs, gets the
   * handler (a queue with its own handler keeps it); `message.queue` names the concrete queue.
   * With `schema`, `message.body` is typed as the schema's output. With `batch`, the handler takes
   * `Message[]` (a BatchHandler; see BatchOptions and BatchResult).
   */
  listenEvents<Schema extends StandardSchema>(
    queue: string,
    handler: BatchHandler<InferOutput<Schema>>,
    options: BatchListenOptions & { schema: Schema },
  ): BatchHandler<InferOutput<Schema>>;
  listenEvents<Body = unknown>(queue: string, handler: BatchHandler<Body>, options: BatchListenOptions): BatchHandler<Body>;
  listenEvents<Schema extends StandardSchema>(
    queue: string,
    handler: Handler<InferOutput<Schema>>,
    options: ListenOptions & { schema: Schema },
  ): Handler<InferOutput<Schema>>;
  listenEvents<Body = unknown>(queue: string, handler: Handler<Body>, options?: ListenOptions): Handler<Body>;
  listenEvents<Body = unknown>(queue: string, handler: Handler<Body> | BatchHandler<Body>, options: ListenOptions & { batch?: BatchOptions } = {}): Handler<Body> | BatchHandler<Body> {
    if (typeof queue !== "string" || queue.length === 0) throw new ConfigError("listenEvents: queue must be a non-empty string");
    if (typeof handler !== "function") throw new ConfigError(`listenEvents("${queue}"): handler must be a function`);
    const brokerName = options.broker ?? DEFAULT_BROKER_NAME;
    if (brokerName !== DEFAULT_BROKER_NAME && !(brokerName in (this.options.brokers ?? {}))) {
      throw new ConfigError(`listenEvents("${queue}"): broker "${brokerName}" is not in new WQueue({ brokers })`);
    }
    checkConcurrency(queue, options.concurrency, options.batch !== undefined);
    if (options.timeoutMs !== undefined && !(Number.isInteger(options.timeoutMs) && options.timeoutMs > 0)) {
      throw new ConfigError(`listenEvents("${queue}"): timeoutMs must be a whole number of milliseconds > 0`);
    }
    if (options.hardTimeoutMs !== undefined && !(Number.isInteger(options.hardTimeoutMs) && options.hardTimeoutMs > 0)) {
      throw new ConfigError(`listenEvents("${queue}"): hardTimeoutMs must be a whole number of milliseconds > 0`);
    }
    if (options.model !== undefined && options.model !== "event-loop" && options.model !== "threads") {
      throw new ConfigError(`listenEvents("${queue}"): model must be "event-loop" or "threads"`);
    }
    if (options.ackPolicy !== undefined && !["after", "before", "manual"].includes(options.ackPolicy)) {
      throw new ConfigError(`listenEvents("${queue}"): ackPolicy must be "after", "before" or "manual"`);
    }
    if (options.decode !== undefined && !["json", "text", "bytes"].includes(options.decode)) {
      throw new ConfigError(`listenEvents("${queue}"): decode must be "json", "text" or "bytes"`);
    }
    if (options.middleware !== undefined && !(Array.isArray(options.middleware) && options.middleware.every((m) => typeof m === "function"))) {
      throw new ConfigError(`listenEvents("${queue}"): middleware must be an array of functions (message, next) => ...`);
    }
    if (options.batch !== undefined) resolveBatchOptions(queue, options.batch);
    const pattern = isQueuePattern(queue);
    if (pattern) checkQueuePattern(queue);
    if (options.discoverMs !== undefined) {
      if (!pattern) throw new ConfigError(`listenEvents("${queue}"): discoverMs applies to a queue pattern ("tenant.*"), and "${queue}" is a queue name`);
      if (!(Number.isInteger(options.discoverMs) && options.discoverMs > 0)) {
        throw new ConfigError(`listenEvents("${queue}"): discoverMs must be a whole number of milliseconds > 0`);
      }
    }
    if (options.rateLimit !== undefined) {
      const { max, perMs } = options.rateLimit ?? {};
      if (!(Number.isInteger(max) && (max as number) > 0 && Number.isInteger(perMs) && (perMs as number) > 0)) {
        throw new ConfigError(`listenEvents("${queue}"): rateLimit must be { max, perMs }, whole numbers > 0 (e.g. { max: 100, perMs: 1000 })`);
      }
      const { by } = options.rateLimit;
      const header = typeof by === "object" && by !== null ? (by as { header?: unknown }).header : undefined;
      if (by !== undefined && by !== "key" && typeof by !== "function" && !(typeof header === "string" && header !== "")) {
        throw new ConfigError(`listenEvents("${queue}"): rateLimit.by must be "key", { header: "name" } or a function of the message`);
      }
    }
    const id = `${brokerName}/${queue}`;
    if (this.#subscriptions.has(id)) {
      throw new ConfigError(`listenEvents("${queue}"): a handler is already registered for this queue on broker "${brokerName}"`);
    }
    this.#subscriptions.set(id, { queue, handler: handler as Handler<never>, options: { ...options } });
    return handler;
  }

  /**
   * TC39 method decorator: `@app.listen("queue")` on a method registers it, bound to the instance,
   * when the class is instantiated (create one instance in the app module).
   */
  listen<Schema extends StandardSchema>(
    queue: string,
    options: ListenOptions & { schema: Schema },
  ): <This>(method: (this: This, message: Message<InferOutput<Schema>>) => unknown, context: ClassMethodDecoratorContext<This>) => void;
  listen(
    queue: string,
    options?: ListenOptions,
  ): <This>(method: (this: This, message: Message<never>) => unknown, context: ClassMethodDecoratorContext<This>) => void;
  listen(queue: string, options: ListenOptions = {}) {
    if ("batch" in options) throw new ConfigError(`@app.listen("${queue}"): batch handlers register with app.listenEvents(queue, handler, { batch })`);
    const register = (handler: Handler<never>) => this.listenEvents(queue, handler, options);
    return <This>(method: (this: This, message: Message<never>) => unknown, context: ClassMethodDecoratorContext<This>) => {
      context.addInitializer(function (this: This) {
        register(method.bind(this));
      });
    };
  }

  /**
   * A handle on one queue with its options: with `schema`, `publish()` is typed by the schema's
   * input and `listen()`'s message body by its output. Registers nothing until `listen()`.
   */
  queue<Schema extends StandardSchema>(
    name: string,
    options: ListenOptions & { schema: Schema },
  ): QueueHandle<InferInput<Schema>, InferOutput<Schema>>;
  queue<Body = unknown>(name: string, options?: ListenOptions): QueueHandle<Body, Body>;
  queue(name: string, options: ListenOptions = {}): QueueHandle {
    return new QueueHandle(this, name, options);
  }

  /** Publishes one message. Outside a worker this opens the broker on first use: call close() when done. */
  async publish(queue: string, body: unknown, options: PublishOptions = {}): Promise<void> {
    if (isQueuePattern(queue)) throw new ConfigError(`publish("${queue}"): that is a queue pattern (listenEvents takes those); publish to one concrete queue`);
    if (!this.#lentBrokers && !this.#ownBrokers) {
      this.#ownBrokers = new BrokerSet(resolveDefaultBrokerUrl(this), this.options.brokers);
    }
    const brokers = (this.#lentBrokers ?? this.#ownBrokers) as BrokerSet;
    const broker = await brokers.get(options.broker);
    if (options.transaction !== undefined && !broker.features.transactionalPublish) {
      throw new ConfigError(`publish("${queue}"): { transaction } needs a broker that can join it (postgres://), not ${broker.kind}`);
    }
    const priority = checkedPriority(queue, options.priority, broker);
    const headers = { ...options.headers };
    (await loadTracer())?.inject(headers);
    const contentType = contentTypeOf(body);
    await broker.publish(queue, [{ body: encodeBody(body), contentType, headers, key: options.key, delayMs: options.delayMs, priority }], {
      transaction: options.transaction,
    });
  }

  /** Lets a running worker lend its connections to publish() (and take them back with undefined). */
  usePublishBrokers(brokers: BrokerSet | undefined): void {
    this.#lentBrokers = brokers;
  }

  /** Closes the connections publish() opened itself (never a worker's). */
  async close(): Promise<void> {
    const brokers = this.#ownBrokers;
    this.#ownBrokers = undefined;
    await brokers?.close();
  }
}
