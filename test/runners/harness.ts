/**
 * Runs an app under each concurrency model, for the runner suite and bench/models.ts.
 *
 * In process (event loop, threads): the Worker's own wiring (loadApp, prepared handlers,
 * SubscriptionLoop, CreditPool, broker consumers) around a runner from createRunner, because
 * Worker does not take a runner yet. Processes: superviseProcesses, in a child `node` that runs
 * supervise-entry.ts, forking the built CLI (dist) as a worker per child.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BrokerSet } from "../../src/brokers/BrokerSet.js";
import type { Consumer } from "../../src/brokers/contract.js";
import { createBroker } from "../../src/brokers/registry.js";
import { loadApp } from "../../src/app/load-app.js";
import { CreditPool } from "../../src/dispatch/CreditPool.js";
import { SubscriptionLoop } from "../../src/dispatch/SubscriptionLoop.js";
import type { Logger } from "../../src/log/logger.js";
import { DEFAULT_RETRY } from "../../src/pipeline/backoff.js";
import { failureOutcome } from "../../src/pipeline/run-handler.js";
import { createRunner, type RunnerHandler, type RunnerModel } from "../../src/runners/create-runner.js";
import type { Runner } from "../../src/runners/Runner.js";
import { subscriptionId } from "../../src/runners/subscription-id.js";
import { waitFor } from "../helpers.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SUPERVISE_ENTRY = path.join(ROOT, "test/runners/supervise-entry.ts");

export interface InProcessWorker {
  runner: Runner;
  /** Messages fetched and not settled yet. */
  readonly inFlight: number;
  /** As Worker.stop: stop fetching, wait up to graceMs, then abort and give back, close. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts the app's subscriptions on `model` in this process. */
export async function startInProcess(options: {
  appFile: string;
  broker: string;
  model: RunnerModel;
  concurrency?: number;
  logger: Logger;
}): Promise<InProcessWorker> {
  const { app } = await loadApp(options.appFile);
  const appRetry = { ...DEFAULT_RETRY, ...app.options.retry };
  const handlers = new Map<string, RunnerHandler>();
  for (const subscription of app.subscriptions) {
    const retry = subscription.options.retry;
    handlers.set(subscriptionId(subscription), {
      handler: subscription.handler,
      format: subscription.options.decode ?? "json",
      retry: retry === false ? undefined : { ...appRetry, ...retry },
      ackPolicy: subscription.options.ackPolicy,
      schema: subscription.options.schema,
      hardTimeoutMs: (subscription.options as { hardTimeoutMs?: number }).hardTimeoutMs,
    });
  }
  const runner = createRunner(options.model, handlers, options.appFile, { logger: options.logger });
  await runner.start?.();
  const brokers = new BrokerSet(options.broker, app.options.brokers);
  // As proposed for Worker: with a runner capacity, fetch at most that many plus one pending
  // receive per queue (an idle queue holds a credit while it waits).
  const requested = options.concurrency ?? 10;
  const queues = app.subscriptions.length;
  const limit = Math.max(runner.capacity === undefined ? requested : Math.min(requested, runner.capacity + queues), queues);
  const pool = new CreditPool(limit, app.subscriptions.length);
  const loops: SubscriptionLoop[] = [];
  const consumers: Consumer[] = [];
  for (const subscription of app.subscriptions) {
    const broker = await brokers.get(subscription.options.broker);
    const concurrency = Math.min(subscription.options.concurrency ?? limit, limit);
    const consumer = broker.consumer(subscription.queue, { maxInFlight: concurrency });
    consumers.push(consumer);
    const id = subscriptionId(subscription);
    const prepared = handlers.get(id) as RunnerHandler;
    loops.push(
      new SubscriptionLoop({
        id,
        queue: subscription.queue,
        consumer,
        runner,
        pool,
        concurrency,
        logger: options.logger,
        ackPolicy: subscription.options.ackPolicy,
        timeoutMs: subscription.options.timeoutMs,
        maxDeliveries: prepared.retry?.maxAttempts ?? appRetry.maxAttempts,
        failure: (attempt, error) => failureOutcome(prepared, attempt, error),
      }),
    );
  }
  for (const loop of loops) loop.start();
  let stopped: Promise<void> | undefined;
  return {
    runner,
    get inFlight() {
      return loops.reduce((sum, loop) => sum + loop.inFlight, 0);
    },
    stop(graceMs = 5000) {
      stopped ??= (async () => {
        await Promise.all(loops.map((loop) => loop.stopFetching()));
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<"deadline">((resolve) => {
          timer = setTimeout(() => resolve("deadline"), graceMs);
        });
        const drained = Promise.all(loops.map((loop) => loop.drained())).then(() => "drained" as const);
        if ((await Promise.race([drained, deadline])) === "deadline") {
          await Promise.allSettled(loops.map((loop) => loop.abandonInFlight()));
        }
        clearTimeout(timer);
        await Promise.allSettled(consumers.map((consumer) => consumer.close()));
        await runner.close();
        await brokers.close();
      })();
      return stopped;
    },
  };
}

export interface RunningSupervisor {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  /** pids of every worker child the supervisor started (from its log lines). */
  childPids(): number[];
  waitForLine(what: string, match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

/** `superviseProcesses({ processes, argv })` in a child node, its JSON log lines collected. */
export function startSupervisor(processes: number, argv: string[], env: Record<string, string> = {}): RunningSupervisor {
  const child = spawn(process.execPath, ["--import", "tsx", SUPERVISE_ENTRY, String(processes), ...argv], {
    cwd: ROOT,
    env: { ...process.env, WQUEUE_LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const collect = () => {
    let rest = "";
    return (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split("\n");
      rest = parts.pop() ?? "";
      lines.push(...parts);
    };
  };
  child.stdout?.on("data", collect());
  child.stderr?.on("data", collect());
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    childPids: () =>
      lines.flatMap((line) => {
        const match = /"msg":"supervisor: child \d+ started \(pid (\d+)\)"/.exec(line);
        return match ? [Number(match[1])] : [];
      }),
    async waitForLine(what, match, timeoutMs = 15_000) {
      await waitFor(() => `${what} (last lines: ${lines.slice(-8).join(" | ")})`, () => lines.some(match), timeoutMs);
      return lines.find(match) as string;
    },
  };
}

/** Publishes JSON bodies to `queue` on `url` (memory brokers of one URL share queues in a process). */
export async function publish(url: string, queue: string, bodies: unknown[]): Promise<void> {
  const broker = await createBroker(url);
  await broker.connect();
  try {
    await broker.publish(
      queue,
      bodies.map((body) => ({ body: Buffer.from(JSON.stringify(body)) })),
    );
  } finally {
    if (!url.startsWith("memory:")) await broker.close();
  }
}

/** Messages still in `queue` (visible or not). */
export async function remaining(url: string, queue: string): Promise<number> {
  const broker = await createBroker(url);
  await broker.connect();
  try {
    return (await broker.browse?.(queue, 100_000))?.length ?? 0;
  } finally {
    if (!url.startsWith("memory:")) await broker.close();
  }
}

/** A JSON-lines event log that handlers in any thread or process append to. */
export interface HandlerEvent {
  event: string;
  queue: string;
  body: { id: number } & Record<string, unknown>;
  attempt: number;
  pid: number;
  thread: number;
  child?: string;
}

export function readEvents(file: string): HandlerEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as HandlerEvent);
}

/** For tests that write an event themselves. */
export function appendEvent(file: string, event: HandlerEvent): void {
  appendFileSync(file, `${JSON.stringify(event)}\n`);
}
