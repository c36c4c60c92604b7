import { describeQueue, type ReadyQueue, summariseQueues } from "./ready-line.js";
import { availableParallelism } from "node:os";
import type { RetryOptions, Subscription } from "../app/types.js";
import { resolveDefaultBrokerUrl, type WQueue } from "../app/WQueue.js";
import { adaptiveBounds } from "../app/adaptive-concurrency.js";
import { resolveBatchOptions } from "../app/batch-options.js";
import { BrokerSet, DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import type { Broker, Consumer, Delivery } from "../brokers/contract.js";
import { defaultDeadLetterQueue } from "../brokers/dead-letter.js";
import { type DeadLetterTarget, deadLetterTarget } from "../dead-letters/dead-letters.js";
import { DeadLettersElsewhere } from "../dead-letters/dead-letters-elsewhere.js";
import { AdaptiveLimit } from "../dispatch/AdaptiveLimit.js";
import { CreditPool } from "../dispatch/CreditPool.js";
import { creditFreeIdling } from "../dispatch/idles-without-credit.js";
import { RateGate } from "../dispatch/RateGate.js";
import { buildSubscription } from "../dispatch/build-subscription.js";
import type { SubscriptionLoop } from "../dispatch/SubscriptionLoop.js";
import { AppLoadError, ConfigError, serializeError } from "../errors.js";
import { createLogger, type Logger } from "../log/logger.js";
import { DEFAULT_RETRY } from "../pipeline/backoff.js";
import { prepareHandler } from "../pipeline/prepare-handler.js";
import { orderingKeyOf, resolvedOrdering } from "../dispatch/ordering.js";
import { WorkerObserver } from "../observability/WorkerObserver.js";
import { loadTracer } from "../observability/tracing.js";
import { createRunner, type RunnerHandler } from "../runners/create-runner.js";
import type { Runner } from "../runners/Runner.js";
import { SuspectSandbox } from "../runners/SuspectSandbox.js";
import { CoordinationStores, coordinationUrlFor } from "../coordination/open-coordination-store.js";
import { CronScheduler } from "./CronScheduler.js";
import { isQueuePattern } from "../brokers/queue-pattern.js";
import { DISCOVER_MS, QueueDiscovery } from "./QueueDiscovery.js";

export interface WorkerOptions {
  /** Default broker URL; overrides WQUEUE_BROKER_URL and the app's own default. */
  broker?: string;
  /** Listen only on these queues (names as registered). */
  queues?: string[];
  /** Messages fetched or running at once, across all queues. Default 10. */
  concurrency?: number;
  /** How long SIGTERM waits for in-flight handlers before giving their messages back. Default 30 s. */
  shutdownGraceMs?: number;
  logger?: Logger;
  /** Shown in the ready line, e.g. the module path. */
  appName?: string;
  /** Runs every queue on this model, whatever each queue asks for (the CLI's --threads / --model). */
  model?: "event-loop" | "threads";
  /** Threads in the pool; default the app's `threads`, else the number of CPUs. */
  threads?: number;
  /** The app module as the CLI was given it: worker threads import it to find the handlers. */
  appModule?: string;
}

interface SelectedSubscription {
  id: string;
  brokerName: string;
  subscription: Subscription;
}

/** What opening a queue needs beyond its subscription; kept so that queues found later open the same way. */
interface OpenContext {
  /** The runner and retry policy of a subscription id. */
  of: (id: string) => { runner: Runner; retry: Required<RetryOptions> | undefined };
  /** The worker mixes runner models (the ready line then names each queue's). */
  mixed: boolean;
  pool: CreditPool;
  tracer: Awaited<ReturnType<typeof loadTracer>>;
  appRetry: Required<RetryOptions>;
  /** The queues opened, for the ready line and the debug list. */
  described: ReadyQueue[];
}

export const DEFAULT_CONCURRENCY = 10;

/**
 * Runs an app: connects every broker its subscriptions name, feeds each subscription through a
 * SubscriptionLoop into the runner, and shuts down in order (stop fetching, drain, give back what
 * is left at the deadline, close). start() and stop() are each idempotent.
 */
export class Worker {
  readonly logger: Logger;
  readonly #app: WQueue;
  readonly #options: WorkerOptions;
  readonly #brokers: BrokerSet;
  readonly #loops: SubscriptionLoop[] = [];
  /** Per-subscription counters and recent failures: metrics, dashboard, `wqueue stats`. */
  readonly observer = new WorkerObserver();
  readonly #subscriptionIds: string[] = [];
  readonly #backlogReaders = new Map<string, () => Promise<number | undefined>>();
  #model = "";
  #limit = 0;
  /** Queues open whose consumers hold a receive, and one credit, while idle; and those that do not. */
  #creditHolders = 0;
  #creditFree = 0;
  readonly #consumers: Consumer[] = [];
  /** `${broker}/${queue}` of every queue consumed: a pattern leaves those to their subscription. */
  readonly #claimed = new Set<string>();
  /** One per pattern subscription: finds its queues, before ready and then while running. */
  readonly #discoveries: QueueDiscovery[] = [];
  #loopsStarted = false;
  readonly #runners: Runner[] = [];
  #sandbox: SuspectSandbox | undefined;
  /** Cron leases, rate limits and pauses shared with the app's other workers (src/coordination). */
  readonly #coordination: CoordinationStores;
  #cron: CronScheduler | undefined;
  #onFatal: ((error: Error) => void) | undefined;
  /**
   * Settles with the first error after start that cannot heal by retrying (a ConfigError from a
   * receive: fetching of that queue has stopped). The CLI stops the worker and exits 2 on it.
   */
  readonly fatal = new Promise<Error>((resolve) => {
    this.#onFatal = resolve;
  });
  #started: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  #forceNow: (() => void) | undefined;
  readonly #forced = new Promise<"forced">((resolve) => {
    this.#forceNow = () => resolve("forced");
  });

  constructor(app: WQueue, options: WorkerOptions = {}) {
    this.#app = app;
    this.#options = options;
    this.logger = options.logger ?? createLogger();
    this.#brokers = new BrokerSet(resolveDefaultBrokerUrl(app, options.broker), app.options.brokers, (level, message) =>
      this.logger[level](message),
    );
    this.#coordination = new CoordinationStores((level, message) => this.logger[level](message));
  }

  start(): Promise<void> {
    this.#started ??= this.#start().catch(async (error: unknown) => {
      await Promise.allSettled(this.#discoveries.map((discovery) => discovery.stop()));
      await Promise.allSettled(this.#runners.map((runner) => runner.close()));
      await this.#sandbox?.close();
      await this.#cron?.stop(0);
      await this.#coordination.close();
      await this.#brokers.close();
      throw error;
    });
    return this.#started;
  }

  async #start(): Promise<void> {
    const subscriptions = this.#selectSubscriptions();
    const patterns = subscriptions.filter(({ subscription }) => isQueuePattern(subscription.queue));
    const exact = subscriptions.filter(({ subscription }) => !isQueuePattern(subscription.queue));
    const requested = this.#options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!(Number.isInteger(requested) && requested > 0)) throw new ConfigError(`concurrency must be a whole number > 0, got ${requested}`);
    const appRetry = { ...DEFAULT_RETRY, ...this.#app.options.retry };
    const runners = await this.#createRunners(subscriptions, appRetry);
    // Threads run at most `capacity` messages: fetch that plus the one receive each queue holds,
    // never so many that fetched messages wait out their visibility timeout.
    const eventLoopOnly = runners.threads === undefined;
    // A batch takes one thread slot for up to maxSize messages.
    const perSlot = Math.max(1, ...subscriptions.map(({ subscription: { queue, options } }) => (options.batch ? resolveBatchOptions(queue, options.batch).maxSize : 1)));
    const wanted = eventLoopOnly || runners.eventLoop ? requested : Math.min(requested, (runners.threads?.capacity ?? requested) * perSlot + exact.length);
    // A queue whose consumer cannot idle without credit keeps one receive outstanding: the limit
    // is raised as such queues open (#openQueue), and the raise is logged once all have.
    const limit = wanted;
    const pool = new CreditPool(limit, 0);
    // Suspects run in a child process that imports the app module, so it needs the module's path.
    if (this.#options.appModule !== undefined) {
      this.#sandbox = new SuspectSandbox({ appModule: this.#options.appModule, subscriptions: runners.all, logger: this.logger });
    }
    const context: OpenContext = { of: runners.of, mixed: runners.mixed, pool, tracer: await loadTracer(), appRetry, described: [] };
    this.#limit = limit;
    for (const { brokerName, subscription } of patterns) this.#checkListsQueues(subscription.queue, await this.#brokers.created(brokerName));
    for (const selected of exact) this.#claimed.add(selected.id);
    for (const selected of exact) await this.#openQueue(selected, selected.subscription.queue, context);
    for (const selected of patterns) await this.#watchPattern(selected, context);
    if (this.#limit > limit) {
      this.logger.warn(
        `concurrency raised from ${limit} to ${this.#limit}: each of the ${this.#creditHolders} queues whose broker holds a receive open while idle needs one slot`,
      );
    }
    this.#app.usePublishBrokers(this.#brokers);
    this.#model = runners.describe();
    await this.#startCron(); // before the loops: its ConfigError must find nothing fetching yet
    for (const loop of this.#loops) loop.start();
    this.#loopsStarted = true;
    for (const discovery of this.#discoveries) discovery.start();
    const appName = this.#options.appName ?? this.#app.options.name ?? "app";
    const { described } = context;
    const queues = summariseQueues(described);
    const watching = this.#discoveries.map((d) => `${d.pattern} (every ${d.everyMs} ms)`).join(", ");
    this.logger.debug({ queues: described.map(describeQueue) }, `queues: ${described.length}, in full`);
    this.logger.info(
      { app: appName, model: this.#model, concurrency: this.#limit, queueCount: described.length, brokers: queues.brokers, patterns: this.#discoveries.map((d) => d.pattern) },
      `ready: ${appName}, model ${this.#model} (concurrency ${this.#limit}), queues: ${queues.text || "none yet"}${watching ? `; watching for new queues: ${watching}` : ""}`,
    );
  }

  /**
   * A pattern subscription (its broker checked by #checkListsQueues): the queues matching now open
   * before `ready`, later ones as the discovery finds them.
   */
  async #watchPattern(selected: SelectedSubscription, context: OpenContext): Promise<void> {
    const { brokerName, subscription } = selected;
    const pattern = subscription.queue;
    const broker = await this.#brokers.get(brokerName);
    const { deadLetterQueue } = subscription.options;
    const discovery = new QueueDiscovery({
      pattern,
      broker,
      everyMs: subscription.options.discoverMs ?? DISCOVER_MS,
      logger: this.logger,
      taken: (queue) => this.#claimed.has(`${brokerName}/${queue}`) || queue === deadLetterQueue,
      open: async (queue) => {
        this.#claimed.add(`${brokerName}/${queue}`);
        try {
          await this.#openQueue(selected, queue, context);
        } catch (error) {
          this.#claimed.delete(`${brokerName}/${queue}`);
          throw error;
        }
        if (this.#loopsStarted) this.logger.info({ queue, pattern, concurrency: this.#limit }, `${queue}: new queue matching ${pattern}, consuming it`);
      },
    });
    this.#discoveries.push(discovery);
    await discovery.first();
  }

  /** A pattern needs a broker that lists its queues: refused before anything connects or is taken. */
  #checkListsQueues(pattern: string, broker: Broker): void {
    if (broker.listQueues !== undefined) return;
    throw new ConfigError(
      `listenEvents("${pattern}"): the ${broker.kind} broker ${broker.url} cannot list its queues, so it takes no queue pattern; listen on each queue by name (patterns work on Redis, SQLite, PostgreSQL, NATS, Kafka and memory)`,
    );
  }

  /**
   * Opens one queue of a subscription (its own name, or one its pattern matched): a consumer, its
   * flow control and policies, and its stats under `${broker}/${queue}`. Handlers are found by the
   * subscription's id, so every queue of a pattern runs the pattern's handler. After `ready` the
   * loop starts at once, sharing the credit pool fairly with the others.
   */
  async #openQueue(selected: SelectedSubscription, queue: string, context: OpenContext): Promise<void> {
    const { id, brokerName } = selected;
    const subscription: Subscription = { ...selected.subscription, queue };
    const { pool, appRetry } = context;
    const statsId = `${brokerName}/${queue}`;
    const limit = pool.limit;
    const broker = await this.#brokers.get(brokerName);
    const { runner, retry } = context.of(id);
    const batch = subscription.options.batch ? resolveBatchOptions(queue, subscription.options.batch) : undefined;
    const runnerLimit = runner.capacity === undefined ? limit : Math.min(limit, runner.capacity * (batch?.maxSize ?? 1) + 1);
    const adaptive = adaptiveBounds(subscription.options.concurrency, runnerLimit);
    const fixed = subscription.options.concurrency;
    const concurrency = adaptive?.max ?? Math.min(typeof fixed === "number" ? fixed : runnerLimit, limit);
    const limiter = adaptive && new AdaptiveLimit(adaptive);
    if (batch && concurrency < batch.maxSize) {
      this.logger.warn(
        `${queue}: batch.maxSize is ${batch.maxSize} but the queue may hold only ${concurrency} messages at once (concurrency): ` +
          `batches will hold at most ${concurrency}; raise --concurrency (or the queue's concurrency) to ${batch.maxSize} for full batches`,
      );
    }
    const partitioned = broker.features.partitioned === true;
    const { deadLetterQueue, deadLetterBroker } = subscription.options;
    let consumer: Consumer = broker.consumer(queue, {
      deadLetterQueue,
      maxInFlight: concurrency,
      onePerPartition: partitioned && resolvedOrdering(subscription.options.ordering, partitioned) === "partition",
    });
    try {
      await consumer.ready?.(); // a queue that can never be consumed fails the start (exit 2)
    } catch (error) {
      await consumer.close();
      throw error;
    }
    // A queue that idles holding a receive (and its credit) open needs a slot of its own, and
    // queues that idle without credit need one more between them, or they could never take.
    if (creditFreeIdling(consumer) === undefined) this.#creditHolders += 1;
    else this.#creditFree += 1;
    pool.addSharer(this.#creditHolders + (this.#creditFree > 0 ? 1 : 0));
    this.#limit = pool.limit;
    if (deadLetterBroker !== undefined && deadLetterBroker !== brokerName) {
      const target = await this.#brokers.get(deadLetterBroker);
      consumer = new DeadLettersElsewhere(consumer, target, deadLetterQueue ?? defaultDeadLetterQueue(queue));
    }
    this.#consumers.push(consumer);
    const { gate, ratePerKey } = await this.#flowOf(brokerName, subscription, broker.features.keepsAttempt === true);
    const loop = buildSubscription({
      id,
      queue,
      consumer,
      runner,
      pool,
      concurrency,
      limiter,
      logger: this.logger,
      retry,
      ackPolicy: subscription.options.ackPolicy,
      timeoutMs: subscription.options.timeoutMs,
      // Poison detection: deliveries past the retry limit mean the worker died mid-message.
      maxDeliveries: retry?.maxAttempts ?? appRetry.maxAttempts,
      orderingKey: orderingKeyOf(subscription.options.ordering, partitioned),
      stats: this.observer.queue(statsId, queue, broker.url),
      observer: this.observer,
      tracer: context.tracer,
      sandbox: this.#sandbox,
      batch,
      gate,
      ratePerKey,
      onFatal: (error) => {
        this.logger.error({ queue, err: serializeError(error) }, `${queue}: ${error.message}`);
        this.#onFatal?.(error);
      },
    });
    this.#loops.push(loop);
    this.#subscriptionIds.push(statsId);
    this.#backlogReaders.set(statsId, async () => broker.backlog?.(queue));
    context.described.push({ queue, broker: broker.url, kind: broker.kind, delivery: broker.features.delivery, model: context.mixed ? runner.model : undefined });
    if (this.#loopsStarted && !this.#stopped) loop.start();
  }

  /**
   * The gate of a subscription: its rate limit and RateLimited pauses, shared through the queue's
   * broker when Redis or SQLite, else the app's `coordination` store, else (no rateLimit) this
   * worker's own pause only. A rateLimit with no store is a ConfigError.
   */
  async #flowOf(brokerName: string, subscription: Subscription, keepsAttempt: boolean) {
    const source = brokerName === DEFAULT_BROKER_NAME ? resolveDefaultBrokerUrl(this.#app, this.#options.broker) : this.#app.options.brokers?.[brokerName];
    const url = coordinationUrlFor(source, this.#app.options.coordination);
    const { rateLimit } = subscription.options;
    if (rateLimit !== undefined && url === undefined) {
      throw new ConfigError(
        `listenEvents("${subscription.queue}", { rateLimit }) needs a coordination store shared by the app's workers: its broker is not Redis or SQLite; set new WQueue({ coordination: "redis://..." | "sqlite://..." })`,
      );
    }
    const store = url === undefined ? undefined : await this.#coordination.get(url);
    const { queue } = subscription;
    if (rateLimit?.by === undefined || store === undefined) {
      return { gate: new RateGate({ queue, store, limit: rateLimit, logger: this.logger }), ratePerKey: undefined };
    }
    // Per key: the queue-wide gate keeps only the pause; over-limit messages go back uncounted.
    if (!keepsAttempt) {
      throw new ConfigError(
        `listenEvents("${queue}", { rateLimit: { by } }) needs a broker that gives a message back without counting an attempt (SQLite, Redis lists, memory): messages over their key's limit go back to wait`,
      );
    }
    const { by, max, perMs } = rateLimit;
    const keyOf = by === "key" ? (d: Delivery) => d.key : typeof by === "function" ? by : (d: Delivery) => d.headers[by.header];
    return {
      gate: new RateGate({ queue, store, limit: undefined, logger: this.logger }),
      ratePerKey: { queue, store, limit: { max, perMs }, keyOf, logger: this.logger },
    };
  }

  /** The app's cron jobs, coordinated through the default broker's store or `coordination`. */
  async #startCron(): Promise<void> {
    const jobs = this.#app.crons;
    if (jobs.length === 0) return;
    const url = coordinationUrlFor(resolveDefaultBrokerUrl(this.#app, this.#options.broker), this.#app.options.coordination);
    if (url === undefined) {
      throw new ConfigError(
        `app.cron("${jobs[0]?.name}") needs a coordination store so that each tick runs once: the default broker is not Redis or SQLite; set new WQueue({ coordination: "redis://..." | "sqlite://..." })`,
      );
    }
    this.#cron = new CronScheduler(jobs, await this.#coordination.get(url), this.#app.options.name ?? "app", this.logger, this.observer);
    await this.#cron.start();
  }

  /**
   * One runner per model in use: the event loop for some queues and a thread pool for others can
   * share a worker. The worker's `model` option (the CLI) overrides each queue's own choice.
   */
  async #createRunners(subscriptions: SelectedSubscription[], appRetry: Required<RetryOptions>) {
    const handlers = { "event-loop": new Map<string, RunnerHandler>(), threads: new Map<string, RunnerHandler>() };
    const retries = new Map<string, Required<RetryOptions> | undefined>();
    for (const { id, subscription } of subscriptions) {
      const retry = subscription.options.retry;
      retries.set(id, retry === false ? undefined : { ...appRetry, ...retry });
      const model = this.#options.model ?? subscription.options.model ?? "event-loop";
      handlers[model].set(id, { ...prepareHandler(this.#app, subscription), hardTimeoutMs: subscription.options.hardTimeoutMs });
    }
    const eventLoop = handlers["event-loop"].size > 0 ? await createRunner({ kind: "event-loop" }, handlers["event-loop"], undefined) : undefined;
    if (eventLoop) this.#runners.push(eventLoop);
    let threads: Runner | undefined;
    const count = this.#options.threads ?? this.#app.options.threads ?? availableParallelism();
    if (handlers.threads.size > 0) {
      threads = await createRunner({ kind: "threads", threads: count }, handlers.threads, this.#options.appModule, { logger: this.logger });
      this.#runners.push(threads);
      await threads.start?.();
    }
    return {
      eventLoop,
      threads,
      all: new Map([...handlers["event-loop"], ...handlers.threads]),
      mixed: eventLoop !== undefined && threads !== undefined,
      of: (id: string) => {
        const onThreads = handlers.threads.has(id);
        return { runner: (onThreads ? threads : eventLoop) as Runner, retry: retries.get(id) };
      },
      describe: () =>
        [eventLoop && "event-loop", threads && `threads (${count})`].filter(Boolean).join(" + "),
    };
  }

  #selectSubscriptions(): SelectedSubscription[] {
    const all = this.#app.subscriptions.map((subscription) => {
      const brokerName = subscription.options.broker ?? DEFAULT_BROKER_NAME;
      return { id: `${brokerName}/${subscription.queue}`, brokerName, subscription };
    });
    if (all.length === 0 && this.#app.crons.length === 0) {
      throw new AppLoadError(`${this.#options.appName ?? "the app"} registers no handlers: call app.listenEvents(queue, handler)`);
    }
    const only = this.#options.queues;
    if (!only || only.length === 0) return all;
    const known = new Set(all.map((s) => s.subscription.queue));
    const unknown = only.filter((queue) => !known.has(queue));
    if (unknown.length > 0) {
      throw new ConfigError(`--queues names ${unknown.join(", ")}, which the app does not listen on (it has: ${[...known].join(", ")})`);
    }
    return all.filter((s) => only.includes(s.subscription.queue));
  }

  /** The broker and dead-letter queue of a subscribed queue (for the dashboard's dead letters). */
  deadLettersOf(queue: string): Promise<DeadLetterTarget | undefined> {
    return deadLetterTarget(this.#app, this.#brokers, queue);
  }

  /** The model and worker-wide limit, once started. */
  get model(): { model: string; concurrency: number } {
    return { model: this.#model, concurrency: this.#limit };
  }

  /** Messages fetched or running, per subscription id. */
  inFlightBySubscription(): Map<string, number> {
    return new Map(this.#loops.map((loop, i) => [this.#subscriptionIds[i] as string, loop.inFlight]));
  }

  /**
   * Pauses or resumes every subscription of `queue` (the dashboard's pause): a paused one fetches
   * nothing and keeps what it holds. Returns how many subscriptions listen on `queue`.
   */
  setPaused(queue: string, paused: boolean): number {
    const loops = this.#loops.filter((_, i) => this.observer.queues.get(this.#subscriptionIds[i] as string)?.queue === queue);
    for (const loop of loops) paused ? loop.pause() : loop.resume();
    return loops.length;
  }

  /** The limit in force of each `concurrency: "auto"` subscription, by id. */
  adaptiveLimits(): Map<string, number> {
    const limits = new Map<string, number>();
    for (const [i, loop] of this.#loops.entries()) {
      const limit = loop.adaptiveLimit;
      if (limit !== undefined) limits.set(this.#subscriptionIds[i] as string, limit);
    }
    return limits;
  }

  /** The ids of the subscriptions paused now. */
  pausedSubscriptions(): Set<string> {
    return new Set(this.#subscriptionIds.filter((_, i) => this.#loops[i]?.paused));
  }

  /** Waiting messages per subscription id, where the broker tells; a broker error leaves it out. */
  async backlog(): Promise<Map<string, number>> {
    const result = new Map<string, number>();
    await Promise.all(
      [...this.#backlogReaders].map(async ([id, read]) => {
        const value = await read().catch(() => undefined);
        if (value !== undefined) result.set(id, value);
      }),
    );
    return result;
  }

  /** Ready when started, not stopping, and every subscription's last receive worked. */
  readiness(): { ready: boolean; problems: string[] } {
    const problems: string[] = [];
    if (!this.#loopsStarted) problems.push("not started");
    if (this.#stopped) problems.push("stopping");
    this.#loops.forEach((loop, i) => {
      if (!loop.consuming) problems.push(`${this.#subscriptionIds[i]}: not consuming (${loop.lastError ?? "stopped"})`);
    });
    return { ready: problems.length === 0, problems };
  }

  /** Messages fetched or running right now, across all queues. */
  get inFlight(): number {
    return this.#loops.reduce((sum, loop) => sum + loop.inFlight, 0);
  }

  /**
   * Graceful stop: no new messages, in-flight handlers get `graceMs` to finish, then their
   * signals abort and their messages are given back to the broker. Idempotent.
   */
  stop(graceMs = this.#options.shutdownGraceMs ?? 30_000): Promise<void> {
    this.#stopped ??= this.#stop(graceMs);
    return this.#stopped;
  }

  /** A second signal: give every in-flight message back now and close. */
  async forceStop(): Promise<void> {
    this.#forceNow?.();
    await this.stop(0);
  }

  async #stop(graceMs: number): Promise<void> {
    await this.#started?.catch(() => undefined);
    await Promise.all(this.#discoveries.map((discovery) => discovery.stop())); // no queue opens from here on
    await Promise.all(this.#loops.map((loop) => loop.stopFetching()));
    const inFlight = this.inFlight;
    if (inFlight > 0) this.logger.info({ inFlight, graceMs }, `stopping: waiting for ${inFlight} in-flight message(s)`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"deadline">((resolve) => {
      timer = setTimeout(() => resolve("deadline"), graceMs);
    });
    const cronStopped = this.#cron?.stop(graceMs);
    const drained = Promise.all(this.#loops.map((loop) => loop.drained())).then(() => "drained" as const);
    const ended = await Promise.race([drained, deadline, this.#forced]);
    if (ended !== "drained") {
      const why = ended === "forced" ? "forced stop" : "shutdown deadline passed";
      this.logger.warn({ inFlight: this.inFlight }, `${why}: giving unfinished messages back to the broker`);
      await Promise.allSettled(this.#loops.map((loop) => loop.abandonInFlight()));
    }
    clearTimeout(timer);
    await Promise.allSettled(this.#loops.map((loop) => loop.close()));
    await Promise.allSettled(this.#consumers.map((consumer) => consumer.close()));
    await Promise.allSettled(this.#runners.map((runner) => runner.close()));
    await this.#sandbox?.close();
    if (ended !== "forced") await cronStopped; // a forced stop does not wait for cron handlers
    await this.#coordination.close();
    this.#app.usePublishBrokers(undefined);
    await this.#brokers.close();
    this.logger.info("stopped");
  }
}
