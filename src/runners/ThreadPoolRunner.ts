import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { BroadcastChannel, type ResourceLimits } from "node:worker_threads";
import { Piscina } from "piscina";
import { AppLoadError, ConfigError, serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { RunResult } from "../pipeline/outcome.js";
import { failed } from "../pipeline/outcome.js";
import type { DeliveryData } from "../pipeline/run-handler.js";
import { HandlerAbandoned, HandlerCrashed, HandlerTimeout, RunnerClosed } from "./errors.js";
import type { Runner } from "./Runner.js";
import { runnerEntry } from "./entry-point.js";
import {
  type AbortNotice,
  type ProbeReply,
  Progress,
  type RunBatchTask,
  type RunItem,
  type RunManyTask,
  STARTED,
  type ThreadReply,
  type ThreadSetup,
  type ThreadSubscriptionSettings,
  type ThreadTask,
} from "./thread-protocol.js";

/** A subscription as the thread runner sees it: settings only, the handler lives in the threads. */
export interface ThreadSubscription extends ThreadSubscriptionSettings {
  /**
   * Past this, the handler's thread is terminated and replaced, and the message is retried
   * (HandlerTimeout). Such a message runs alone on its thread, so the kill takes nothing else.
   */
  hardTimeoutMs?: number;
}

export interface ThreadPoolRunnerOptions {
  /** Threads in the pool (each runs `tasksPerThread` messages at a time). */
  threads: number;
  /** The app module, as given to `wqueue worker -a`: every thread imports it to find the handlers. */
  appModule: string;
  /** Subscription id (`${broker}/${queue}`) -> settings. */
  subscriptions: ReadonlyMap<string, ThreadSubscription>;
  /**
   * Messages one thread runs at once. Default 1: CPU-bound handlers gain nothing from more, and a
   * hard timeout or crash then takes down only the message at fault.
   */
  tasksPerThread?: number;
  /** Where the app module spec is resolved from; default process.cwd(). */
  cwd?: string;
  /**
   * On close, how long handlers still running (their message.signal just aborted) get to return
   * before their threads are terminated. Default 1000 ms.
   */
  closeGraceMs?: number;
  /**
   * Messages submitted in one turn of the event loop share a thread task (one round trip for all)
   * while their expected handler time, learnt per subscription, stays within this. Default 1 ms:
   * microsecond handlers share tasks, slow ones go one per task (a thread holding back messages
   * would leave other threads idle). 0: every message in a task of its own.
   */
  coalesceMs?: number;
  /** V8 heap limits per thread: a thread over them dies alone (HandlerCrashed), not the process. */
  resourceLimits?: ResourceLimits;
  logger?: Logger;
}

/** One run() or runBatch() call. */
interface Job {
  readonly task: number;
  readonly sub: string;
  readonly settings: ThreadSubscription;
  readonly data: DeliveryData;
  /** A batch subscription's batch (then `data` is its first message): one task, one handler call. */
  readonly batch?: readonly DeliveryData[];
  readonly signal: AbortSignal;
  /** A single result for a batch (a crash, a close) stands for each of its messages. */
  readonly resolve: (outcome: RunResult | RunResult[]) => void;
  /** The piscina task carrying it, once sent. */
  sent?: Sent;
  /** Its cell in the progress array while it is in a thread (not for batches). */
  slot?: number;
  done: boolean;
}

/** One piscina task: several messages (RunManyTask) or one batch (RunBatchTask). */
interface Sent {
  readonly jobs: Job[];
  readonly at: number;
  /** Set for a hard-timeout message (alone in its task): aborting it makes piscina terminate the thread. */
  kill?: AbortController;
  timer?: NodeJS.Timeout;
  timedOut: boolean;
}

/** The most messages in one task. */
const MAX_PER_TASK = 64;
/** Weight of the latest task in a subscription's time per message. */
const EWMA = 0.2;

/**
 * Runs handlers on a pool of worker threads (piscina), for CPU-bound handlers. The delivery, and so
 * the ack, stays on the caller's thread; a thread gets the message's data, its body copied into a
 * fresh ArrayBuffer that is transferred, not cloned.
 *
 * - Messages submitted in one turn of the event loop cross in one piscina task per free slot (one
 *   message each way, one wake-up, for all of them: that round trip is most of a short handler's
 *   cost), as few tasks as keep each within `coalesceMs` of expected handler time; the thread runs them
 *   one after another and answers a result per message. Messages beyond the free slots wait here,
 *   not in piscina's queue, so one given up before it starts never reaches a thread; one given up
 *   while it waits behind another in its task is not run either (HandlerAbandoned).
 * - `message.signal` in the thread aborts when the caller's signal aborts (one BroadcastChannel
 *   message per abort, listing the messages it concerns: nothing is created per message for this).
 * - A subscription's `hardTimeoutMs` counts from the thread's note that the handler started and is
 *   enforced by terminating the thread: such a message travels alone. A thread that dies
 *   (process.exit, uncaught exception, resourceLimits) is replaced too. Either way the message at
 *   fault comes back as a Failed (HandlerTimeout / HandlerCrashed) that the worker's retry step maps
 *   like any handler error; of the others in its task (read from the shared progress cells) those
 *   acked stay acked and those not started are given back without an attempt charged. Other
 *   threads keep going. No retry policy lives here.
 */
export class ThreadPoolRunner implements Runner {
  readonly model = "threads";
  /** The most messages running at once; the worker should fetch no more than this. */
  readonly capacity: number;
  readonly #options: ThreadPoolRunnerOptions;
  readonly #pool: Piscina<ThreadTask, ThreadReply>;
  readonly #aborts: BroadcastChannel;
  readonly #waiting: Job[] = [];
  /** Jobs in a thread, by task number (abort notices and start notes name them so). */
  readonly #running = new Map<number, Job>();
  readonly #bySignal = new WeakMap<AbortSignal, Set<Job>>();
  readonly #progress: Int32Array;
  /** Progress cells not in use. */
  readonly #freeSlots: number[];
  /** Per subscription, the recent handler time per message in ms (round trip included). */
  readonly #msPerMessage = new Map<string, number>();
  readonly #coalesceMs: number;
  /** Piscina tasks in flight; at most `capacity`. */
  #tasks = 0;
  #flushQueued = false;
  #nextTask = 1;
  #started: Promise<void> | undefined;
  /** Called when the last running task finishes (close() waits for it). */
  #onIdle: (() => void) | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: ThreadPoolRunnerOptions) {
    const tasksPerThread = options.tasksPerThread ?? 1;
    for (const [name, value] of [["threads", options.threads], ["tasksPerThread", tasksPerThread]] as const) {
      if (!(Number.isInteger(value) && value > 0)) throw new ConfigError(`${name} must be a whole number > 0, got ${value}`);
    }
    this.#coalesceMs = options.coalesceMs ?? 1;
    if (!(this.#coalesceMs >= 0)) throw new ConfigError(`coalesceMs must be a number of milliseconds >= 0, got ${options.coalesceMs}`);
    const subscriptions: ThreadSetup["subscriptions"] = {};
    for (const [id, settings] of options.subscriptions) {
      const { hardTimeoutMs } = settings;
      if (hardTimeoutMs !== undefined && !(Number.isFinite(hardTimeoutMs) && hardTimeoutMs > 0)) {
        throw new ConfigError(`${id}: hardTimeoutMs must be a number of milliseconds > 0, got ${hardTimeoutMs}`);
      }
      subscriptions[id] = { format: settings.format, ackPolicy: settings.ackPolicy };
    }
    this.#options = options;
    this.capacity = options.threads * tasksPerThread;
    // Every task in flight holds at most MAX_PER_TASK cells.
    const cells = this.capacity * MAX_PER_TASK;
    const progress = new SharedArrayBuffer(cells * Int32Array.BYTES_PER_ELEMENT);
    this.#progress = new Int32Array(progress);
    this.#freeSlots = Array.from({ length: cells }, (_, i) => cells - 1 - i);
    const setup: ThreadSetup = {
      appModule: options.appModule,
      cwd: options.cwd ?? process.cwd(),
      subscriptions,
      abortChannel: `wqueue-aborts-${randomUUID()}`,
      progress,
    };
    this.#aborts = new BroadcastChannel(setup.abortChannel);
    (this.#aborts as unknown as { unref(): void }).unref();
    const entry = runnerEntry("thread-entry");
    const ready = new Set<number>();
    this.#pool = new Piscina<ThreadTask, ThreadReply>({
      loadBalancer: readyThreadsFirst(ready, tasksPerThread),
      filename: entry.filename,
      execArgv: entry.execArgv,
      minThreads: options.threads,
      maxThreads: options.threads,
      concurrentTasksPerWorker: tasksPerThread,
      idleTimeout: Number.POSITIVE_INFINITY,
      // "sync": an idle thread blocks in Atomics.wait and wakes at once for the next message (about
      // half the dispatch cost of "async"). The price: work a handler leaves running after it
      // returns (un-awaited timers, sockets) pauses while its thread has nothing to do.
      atomics: "sync",
      recordTiming: false,
      workerData: setup,
      resourceLimits: options.resourceLimits,
    });
    // 'workerCreate' comes once a thread has loaded the app (at once for the first threads, which
    // start() probes); a replacement thread gets no message before.
    this.#pool.on("workerCreate", (thread: { id: number }) => ready.add(thread.id));
    this.#pool.on("workerDestroy", (thread: { id: number }) => ready.delete(thread.id));
    this.#pool.on("message", (note: unknown) => this.#onStarted(note));
    // Piscina emits 'error' for a thread that dies with no task on it; unhandled, that would
    // crash the worker. The dead thread is replaced either way.
    this.#pool.on("error", (error: unknown) => {
      options.logger?.warn({ err: serializeError(error) }, "a handler thread died while idle; it was replaced");
    });
  }

  /**
   * Resolves once every thread has loaded the app and found every subscription's handler; rejects
   * with an AppLoadError otherwise. Optional (run() works without it), but the worker calls it so
   * that a module that cannot load in a thread fails at start, not as retried messages.
   */
  start(): Promise<void> {
    this.#started ??= this.#probe();
    return this.#started;
  }

  async #probe(): Promise<void> {
    const replies = await Promise.all(
      Array.from({ length: this.#options.threads }, () =>
        (this.#pool.run({ kind: "probe" }) as Promise<ProbeReply>).catch((error: unknown) => ({
          kind: "probe" as const,
          error: serializeError(error),
        })),
      ),
    );
    for (const reply of replies) {
      if ("error" in reply) {
        throw new AppLoadError(`in a worker thread: ${reply.error.message}`);
      }
      const missing = [...this.#options.subscriptions.keys()].filter((id) => !reply.ids.includes(id));
      if (missing.length > 0) {
        throw new AppLoadError(
          `a worker thread imported ${this.#options.appModule} but found no handler for ${missing.join(", ")}: ` +
            "threads find handlers by importing the module, so it must register them when imported",
        );
      }
    }
  }

  run(subscriptionId: string, data: DeliveryData, signal: AbortSignal): Promise<RunResult> {
    return this.#enqueue(subscriptionId, data, undefined, signal) as Promise<RunResult>;
  }

  /** A batch crosses to its thread as one task; a batch takes one of the pool's slots. */
  async runBatch(subscriptionId: string, batch: readonly DeliveryData[], signal: AbortSignal): Promise<RunResult[]> {
    const first = batch[0];
    if (first === undefined) return [];
    const result = await this.#enqueue(subscriptionId, first, batch, signal);
    return Array.isArray(result) && result.length === batch.length ? result : batch.map(() => (Array.isArray(result) ? mismatched(subscriptionId) : result));
  }

  #enqueue(subscriptionId: string, data: DeliveryData, batch: readonly DeliveryData[] | undefined, signal: AbortSignal): Promise<RunResult | RunResult[]> {
    const settings = this.#options.subscriptions.get(subscriptionId);
    if (!settings) return Promise.reject(new Error(`no handler for subscription ${subscriptionId}`));
    if (this.#closed) return Promise.resolve(closedOutcome(subscriptionId));
    return new Promise<RunResult | RunResult[]>((resolve) => {
      const job: Job = { task: this.#nextTask++, sub: subscriptionId, settings, data, batch, signal, resolve, done: false };
      this.#watch(job);
      this.#waiting.push(job);
      this.#queueFlush();
    });
  }

  /**
   * Closes the pool. Handlers still running (abandoned at the shutdown deadline, their signals
   * aborted) get closeGraceMs to return, then their threads are terminated. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const job of this.#waiting.splice(0)) this.#finish(job, closedOutcome(job.sub));
      if (this.#tasks > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => {
            this.#onIdle = resolve;
          }),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, this.#options.closeGraceMs ?? 1000);
          }),
        ]);
        clearTimeout(timer);
      }
      await this.#pool.destroy();
      for (const job of [...this.#running.values()]) this.#finish(job, closedOutcome(job.sub));
      this.#aborts.close();
    })();
    return this.#closed;
  }

  /** Sends what waits at the end of this turn of the event loop, so that the turn's messages share tasks. */
  #queueFlush(): void {
    if (this.#flushQueued || this.#tasks >= this.capacity) return;
    this.#flushQueued = true;
    setImmediate(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  /**
   * Fills free slots with what waits, in order: spread evenly over as few tasks as keep each
   * within coalesceMs of expected handler time, and no more tasks than threads (more would only
   * add round trips).
   */
  #flush(): void {
    while (!this.#closed && this.#waiting.length > 0 && this.#tasks < this.capacity) {
      const first = this.#waiting.shift() as Job;
      const share = Math.ceil((this.#waiting.length + 1) / this.#tasksFor(first));
      if (first.batch) {
        this.#sendBatch(first, first.batch);
        continue;
      }
      const jobs = [first];
      if (first.settings.hardTimeoutMs === undefined && this.#coalesceMs > 0) {
        let budget = this.#coalesceMs - this.#expectedMs(first.sub);
        while (jobs.length < share && jobs.length < MAX_PER_TASK) {
          const next = this.#waiting[0];
          if (next === undefined || next.batch || next.settings.hardTimeoutMs !== undefined) break;
          budget -= this.#expectedMs(next.sub);
          if (budget < 0) break;
          jobs.push(this.#waiting.shift() as Job);
        }
      }
      this.#sendMany(jobs);
    }
  }

  /**
   * How many tasks the waiting messages (of `first`'s kind) should make: as few as keep each within
   * coalesceMs, since every task costs a round trip on this thread; at most one per free thread.
   */
  #tasksFor(first: Job): number {
    const most = Math.min(this.capacity - this.#tasks, this.#options.threads);
    if (this.#coalesceMs === 0) return most;
    const needed = Math.ceil(((this.#waiting.length + 1) * this.#expectedMs(first.sub)) / this.#coalesceMs);
    return Math.max(1, Math.min(most, needed));
  }

  /** Unknown until a task of the subscription has come back: then its messages go alone. */
  #expectedMs(sub: string): number {
    return this.#msPerMessage.get(sub) ?? Number.POSITIVE_INFINITY;
  }

  /** Every body copied into one fresh buffer, transferred; each message's body is a view of it. */
  #sendMany(jobs: Job[]): void {
    let size = 0;
    for (const job of jobs) size += job.data.body.byteLength;
    const buffer = new ArrayBuffer(size);
    const sent = this.#sent(jobs);
    let offset = 0;
    const items = jobs.map((job): RunItem => {
      const { data } = job;
      const body = new Uint8Array(buffer, offset, data.body.byteLength);
      body.set(data.body);
      offset += data.body.byteLength;
      const slot = this.#freeSlots.pop() as number;
      this.#progress[slot] = Progress.queued;
      job.slot = slot;
      const item: RunItem = { task: job.task, sub: job.sub, slot, id: data.id, queue: data.queue, body, headers: data.headers, key: data.key, attempt: data.attempt };
      if (job.signal.aborted) item.aborted = serializeError(job.signal.reason);
      return item;
    });
    const task: RunManyTask = { kind: "many", items };
    let signal: AbortSignal | undefined;
    const first = jobs[0] as Job;
    if (first.settings.hardTimeoutMs !== undefined) {
      task.notify = true;
      sent.kill = new AbortController();
      signal = sent.kill.signal;
    }
    (this.#pool.run(task, { transferList: [buffer], signal }) as Promise<RunResult[]>).then(
      (results) => this.#settle(sent, results.length === jobs.length ? results : jobs.map((job) => mismatched(job.sub))),
      (error: unknown) => this.#settle(sent, jobs.map((job) => this.#failed(sent, job, error))),
    );
  }

  /** A batch subscription's batch, one task, bodies as views of one transferred buffer. */
  #sendBatch(job: Job, batch: readonly DeliveryData[]): void {
    let size = 0;
    for (const data of batch) size += data.body.byteLength;
    const buffer = new ArrayBuffer(size);
    let offset = 0;
    const messages = batch.map((data): DeliveryData => {
      const body = new Uint8Array(buffer, offset, data.body.byteLength);
      body.set(data.body);
      offset += data.body.byteLength;
      return { id: data.id, queue: data.queue, body, headers: data.headers, key: data.key, attempt: data.attempt };
    });
    const sent = this.#sent([job]);
    const task: RunBatchTask = { kind: "batch", task: job.task, sub: job.sub, messages };
    if (job.signal.aborted) task.aborted = serializeError(job.signal.reason);
    let signal: AbortSignal | undefined;
    if (job.settings.hardTimeoutMs !== undefined) {
      task.notify = true;
      sent.kill = new AbortController();
      signal = sent.kill.signal;
    }
    (this.#pool.run(task, { transferList: [buffer], signal }) as Promise<RunResult[]>).then(
      (results) => this.#settle(sent, [results]),
      (error: unknown) => this.#settle(sent, [this.#failed(sent, job, error)]),
    );
  }

  #sent(jobs: Job[]): Sent {
    const sent: Sent = { jobs, at: performance.now(), timedOut: false };
    this.#tasks += 1;
    for (const job of jobs) {
      job.sent = sent;
      this.#running.set(job.task, job);
    }
    return sent;
  }

  /** A task came back (or failed): each job gets its result, the slot goes to what waits. */
  #settle(sent: Sent, results: (RunResult | RunResult[])[]): void {
    clearTimeout(sent.timer);
    this.#tasks -= 1;
    if (!sent.timedOut) {
      const perMessage = (performance.now() - sent.at) / sent.jobs.length;
      for (const job of sent.jobs) {
        const before = this.#msPerMessage.get(job.sub);
        this.#msPerMessage.set(job.sub, before === undefined ? perMessage : before + EWMA * (perMessage - before));
      }
    }
    sent.jobs.forEach((job, i) => {
      this.#finish(job, results[i] as RunResult | RunResult[]);
    });
    if (this.#tasks === 0) this.#onIdle?.();
    if (this.#waiting.length > 0) this.#queueFlush();
  }

  /** The hard timeout runs from the thread's start note, not from submission (thread start-up). */
  #onStarted(note: unknown): void {
    const task = (note as { [STARTED]?: number } | null)?.[STARTED];
    if (task === undefined) return;
    const sent = this.#running.get(task)?.sent;
    if (!sent || sent.timer || !sent.kill) return;
    const kill = sent.kill;
    sent.timer = setTimeout(() => {
      sent.timedOut = true;
      kill.abort(); // piscina terminates the thread running the task and starts a new one
    }, (sent.jobs[0] as Job).settings.hardTimeoutMs);
  }

  /** Why a task failed, for one of its jobs: what its progress cell says the thread had done with it. */
  #failed(sent: Sent, job: Job, error: unknown): RunResult {
    if (this.#closed) return closedOutcome(job.sub);
    if (sent.timedOut) {
      return failed(
        new HandlerTimeout(`handler of ${job.sub} ran past its hard timeout of ${job.settings.hardTimeoutMs} ms: its thread was terminated and replaced`),
      );
    }
    const progress = job.slot === undefined ? Progress.started : Atomics.load(this.#progress, job.slot);
    if (progress === Progress.acked) return { type: "ack" };
    if (progress === Progress.queued) {
      const error = new HandlerAbandoned(`${job.sub}: the thread died (another message on it crashed) before this message's handler started`);
      return { type: "retry", delayMs: 0, error: serializeError(error), keepAttempt: true };
    }
    // Started, or finished with an outcome other than ack that was lost with the thread: retried.
    return failed(crashError(job.sub, error));
  }

  #finish(job: Job, outcome: RunResult | RunResult[]): void {
    if (job.done) return;
    job.done = true;
    this.#bySignal.get(job.signal)?.delete(job);
    if (job.sent) this.#running.delete(job.task);
    if (job.slot !== undefined) {
      this.#freeSlots.push(job.slot);
      job.slot = undefined;
    }
    job.resolve(outcome);
  }

  /** One abort listener per signal (the dispatcher shares one per queue), none per message. */
  #watch(job: Job): void {
    let jobs = this.#bySignal.get(job.signal);
    if (!jobs) {
      jobs = new Set();
      this.#bySignal.set(job.signal, jobs);
      const signal = job.signal;
      if (!signal.aborted) signal.addEventListener("abort", () => this.#onAbort(signal), { once: true });
    }
    jobs.add(job);
  }

  #onAbort(signal: AbortSignal): void {
    const jobs = this.#bySignal.get(signal);
    if (!jobs) return;
    const tasks: number[] = [];
    for (const job of [...jobs]) {
      if (job.sent) {
        tasks.push(job.task);
      } else {
        // Given up before it started: it never reaches a thread.
        const index = this.#waiting.indexOf(job);
        if (index >= 0) this.#waiting.splice(index, 1);
        const error = new HandlerAbandoned(`${job.sub}: the message was given up before its handler started`);
        this.#finish(job, { type: "retry", delayMs: 0, error: serializeError(error) });
      }
    }
    if (tasks.length > 0) this.#aborts.postMessage({ tasks, reason: serializeError(signal.reason) } satisfies AbortNotice);
  }
}

type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>["loadBalancer"]>;

/**
 * Piscina's least-busy balancer, except that it skips threads still starting: piscina would hand a
 * message to a replacement thread while it loads the app (seconds, from source) though another
 * thread is free the moment after. A message that finds no ready thread waits in piscina's queue.
 */
function readyThreadsFirst(ready: ReadonlySet<number>, maximumUsage: number): LoadBalancer {
  return (task, workers) => {
    let candidate: (typeof workers)[number] | null = null;
    let lowest = maximumUsage;
    for (const worker of workers) {
      if (!ready.has(worker.id)) continue;
      if (worker.currentUsage === 0) return worker;
      if (worker.isRunningAbortableTask || task.isAbortable) continue;
      if (worker.currentUsage < lowest) {
        candidate = worker;
        lowest = worker.currentUsage;
      }
    }
    return candidate;
  };
}

/** A thread answered a batch with the wrong number of results: a bug, retried rather than lost. */
function mismatched(sub: string): RunResult {
  return failed(new Error(`${sub}: the thread answered a batch with the wrong number of results`));
}

/** A forced close gives the message back as it was: no attempt is charged to the handler. */
function closedOutcome(sub: string): RunResult {
  const error = new RunnerClosed(`${sub}: the thread pool closed before the handler finished`);
  return { type: "retry", delayMs: 0, error: serializeError(error) };
}

/** Why piscina failed a task, as a HandlerCrashed that keeps the thread's own stack when there is one. */
function crashError(sub: string, cause: unknown): HandlerCrashed {
  const original = cause instanceof Error ? cause : new Error(String(cause));
  const exited = /^worker exited with code: (-?\d+)/.exec(original.message);
  const why = exited
    ? `the thread exited with code ${exited[1]}`
    : original.message === "Terminating worker thread"
      ? "the thread was terminated (another message on it timed out or crashed)"
      : `the thread died: ${original.name}: ${original.message}`;
  const crashed = new HandlerCrashed(`handler of ${sub} did not finish: ${why}; the thread was replaced`, { cause });
  // The uncaught error's own stack points at the handler; piscina's exit error says nothing.
  if (!exited && original.stack) crashed.stack = `${crashed.name}: ${crashed.message}\n${original.stack.split("\n").slice(1).join("\n")}`;
  return crashed;
}

