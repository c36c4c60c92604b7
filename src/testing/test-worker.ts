import type { Headers } from "../brokers/contract.js";
import type { BatchHandler, BatchListenOptions, BodyFormat, Handler, ListenOptions, Message, PublishOptions, RetryOptions } from "../app/types.js";
import { WQueue } from "../app/WQueue.js";
import { BrokerSet, DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import { MemoryBroker } from "../brokers/memory/MemoryBroker.js";
import { isQueuePattern, matchesQueuePattern } from "../brokers/queue-pattern.js";
import { deadLetterTarget, listDeadLetters } from "../dead-letters/dead-letters.js";
import { createLogger, type Logger } from "../log/logger.js";
import { Worker } from "../worker/Worker.js";

export interface TestWorkerOptions {
  /**
   * Broker URL for the app's default broker; default a fresh in-memory broker. With a URL the
   * app's named brokers stay as the app defines them; without, each gets its own memory broker.
   */
  broker?: string;
  /** Retry at once instead of after the backoff delay (the number of attempts is kept). Default true. */
  skipRetryDelays?: boolean;
  /** Default: a silent logger, so the test output stays clean. */
  logger?: Logger;
  /** Listen only on these queues. */
  queues?: string[];
  concurrency?: number;
  /** How long close() lets in-flight handlers finish before giving their messages back. Default 1000 ms. */
  closeGraceMs?: number;
}

/** A message whose handler returned (or resolved) without throwing. */
export interface HandledMessage<Body = unknown> {
  readonly id: string;
  readonly body: Body;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly attempt: number;
}

export interface TestDeadLetter {
  readonly body: unknown;
  readonly reason: string | undefined;
  /** "Error: message" of the last failure. */
  readonly error: string | undefined;
  readonly attempts: number | undefined;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
}

export interface TestWorker {
  /** Publishes through the app's own publish(), as a handler or producer would. */
  publish(queue: string, body: unknown, options?: PublishOptions): Promise<void>;
  /**
   * Resolves once nothing is queued, in flight or waiting to retry on the queues the worker
   * listens on (including what handlers published meanwhile); rejects past `timeoutMs` (default 5000).
   */
  drain(options?: { timeoutMs?: number }): Promise<void>;
  /** Messages of `queue` whose handler succeeded, in the order they finished. */
  handled<Body = unknown>(queue: string): HandledMessage<Body>[];
  /** The dead letters of `queue`, bodies decoded as the queue decodes them. */
  deadLetters(queue: string): Promise<TestDeadLetter[]>;
  /** Stops the worker and closes its connections. */
  close(): Promise<void>;
  /** The underlying worker (its observer has the counters). */
  readonly worker: Worker;
}

let testWorkers = 0;

/** How often a pattern subscription of a test worker lists its queues, unless it sets discoverMs. */
const TEST_DISCOVER_MS = 20;

/**
 * Runs an app's handlers for a test: `const t = await createTestWorker(app)`, `await t.publish(...)`,
 * `await t.drain()`, then assert on `t.handled(queue)` / `await t.deadLetters(queue)`; `await t.close()`.
 * Handlers run on the event loop (a thread could not report what it handled). Framework-agnostic:
 * vitest, jest and node:test alike.
 */
export async function createTestWorker(app: WQueue, options: TestWorkerOptions = {}): Promise<TestWorker> {
  const own = `wqueue-test-${process.pid}-${++testWorkers}`;
  const defaultUrl = options.broker ?? `memory://${own}`;
  const named =
    options.broker === undefined
      ? Object.fromEntries(Object.keys(app.options.brokers ?? {}).map((name) => [name, `memory://${own}-${name}`]))
      : app.options.brokers;
  const skipDelays = options.skipRetryDelays ?? true;
  const quick = (retry: RetryOptions | undefined): RetryOptions | undefined =>
    skipDelays ? { ...retry, baseDelayMs: 0, maxDelayMs: 0 } : retry;

  // A copy of the app on the test's brokers, whose handlers record what they handled.
  const handled = new Map<string, HandledMessage[]>();
  const shadow = new WQueue({ ...app.options, broker: defaultUrl, brokers: named, retry: quick(app.options.retry) });
  const record = (queue: string, message: Message) => {
    const list = handled.get(queue) ?? [];
    list.push({ id: message.id, body: message.body, headers: message.headers, key: message.key, attempt: message.attempt });
    handled.set(queue, list);
  };
  for (const { queue, handler, options: listen } of app.subscriptions) {
    const recording: Handler = async (message: Message) => {
      const result = await (handler as Handler)(message);
      record(message.queue, message); // the concrete queue, also under a pattern
      return result;
    };
    // A batch handler: what it did not report failed counts as handled (batch-types in types.ts).
    const recordingBatch: BatchHandler = async (messages) => {
      const result = await (handler as unknown as BatchHandler)(messages);
      const list = (result as { failed?: unknown } | undefined)?.failed;
      const failed = new Set(Array.isArray(list) ? list.map((entry) => (entry as { message?: unknown } | null)?.message) : []);
      for (const message of messages) if (!failed.has(message)) record(message.queue, message);
      return result;
    };
    const retry = listen.retry === false ? false : listen.retry === undefined ? undefined : quick(listen.retry);
    // A pattern lists its queues every TEST_DISCOVER_MS, so a queue a test publishes to is found within drain().
    const discoverMs = isQueuePattern(queue) ? (listen.discoverMs ?? TEST_DISCOVER_MS) : undefined;
    // No rateLimit: a test runs the handlers at once, and memory brokers have no coordination store.
    const shadowOptions = { ...listen, retry, rateLimit: undefined, discoverMs };
    if (listen.batch) shadow.listenEvents(queue, recordingBatch, { ...shadowOptions, batch: listen.batch } as BatchListenOptions);
    else shadow.listenEvents(queue, recording, shadowOptions as ListenOptions);
  }

  // The app's own publish() (in handlers, in t.publish) goes to the test's brokers.
  const brokers = new BrokerSet(defaultUrl, named);
  app.usePublishBrokers(brokers);
  const worker = new Worker(shadow, {
    logger: options.logger ?? createLogger("silent"),
    broker: defaultUrl,
    queues: options.queues,
    concurrency: options.concurrency,
    model: "event-loop",
    appName: app.options.name ?? "test app",
  });
  try {
    await worker.start();
  } catch (error) {
    app.usePublishBrokers(undefined);
    await brokers.close();
    throw error;
  }

  const listened = shadow.subscriptions.filter((s) => !options.queues || options.queues.includes(s.queue));
  const urlOf = (brokerName: string) => brokers.url(brokerName);

  /** What is still to do: queued, delayed (memory brokers only) and in flight. */
  const pending = async (): Promise<{ queued: number; delayed: number; inFlight: number }> => {
    let queued = 0;
    let delayed = 0;
    const backlog = await worker.backlog();
    for (const { queue: registered, options: listen } of listened) {
      const brokerName = listen.broker ?? DEFAULT_BROKER_NAME;
      const url = urlOf(brokerName);
      const memory = url?.startsWith("memory:") ? new MemoryBroker(url) : undefined;
      // A pattern: every matching queue, on a memory broker also those not found by the worker yet.
      const queues = !isQueuePattern(registered)
        ? [registered]
        : memory
          ? await memory.listQueues(registered)
          : [...backlog.keys()].map((id) => id.slice(brokerName.length + 1)).filter((queue) => matchesQueuePattern(registered, queue));
      for (const queue of queues) {
        if (memory) {
          const memoryQueue = memory.queue(queue);
          queued += memoryQueue.ready.length;
          delayed += memoryQueue.timers.size;
        } else {
          queued += backlog.get(`${brokerName}/${queue}`) ?? 0;
        }
      }
    }
    return { queued, delayed, inFlight: worker.inFlight };
  };

  let closed: Promise<void> | undefined;
  return {
    worker,
    publish: (queue, body, publishOptions) => app.publish(queue, body, publishOptions),
    async drain({ timeoutMs = 5000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      let idleChecks = 0;
      // Idle twice in a row, a timer tick apart: a message between receive and handler is not missed.
      while (idleChecks < 2) {
        const left = await pending();
        const idle = left.queued === 0 && left.delayed === 0 && left.inFlight === 0;
        idleChecks = idle ? idleChecks + 1 : 0;
        if (!idle && Date.now() > deadline) {
          throw new Error(
            `drain: not idle after ${timeoutMs} ms (${left.queued} queued, ${left.inFlight} in flight, ${left.delayed} waiting to retry)`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, idle ? 10 : 2));
      }
    },
    handled: <Body>(queue: string) => [...(handled.get(queue) ?? [])] as HandledMessage<Body>[],
    async deadLetters(queue) {
      const target = await deadLetterTarget(shadow, brokers, queue);
      if (!target) throw new Error(`deadLetters("${queue}"): the app does not listen on "${queue}"`);
      const decode = shadow.subscriptions.find((s) => s.queue === queue)?.options.decode ?? "json";
      return (await listDeadLetters(target.broker, target.deadQueue, 10_000)).map((letter) => ({
        body: decodeBody(letter.body, decode),
        reason: letter.reason,
        error: letter.error,
        attempts: letter.attempts,
        headers: letter.headers,
        key: letter.key,
      }));
    },
    close() {
      closed ??= (async () => {
        await worker.stop(options.closeGraceMs ?? 1000);
        app.usePublishBrokers(undefined);
        await brokers.close();
      })();
      return closed;
    },
  };
}

function decodeBody(body: Uint8Array, format: BodyFormat): unknown {
  if (format === "bytes") return body;
  const text = Buffer.from(body).toString("utf8");
  if (format === "text") return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
