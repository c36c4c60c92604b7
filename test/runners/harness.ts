/**
 * Runs an app under each concurrency model, for the runner suite and bench/models.ts.
 *
 * In process (event loop, threads): the real Worker, as `wqueue worker --model M --threads N`
 * builds it (the same dispatch, policies and limits). Processes: superviseProcesses, in a child
 * `node` that runs supervise-entry.ts, forking the built CLI (dist) as a worker per child.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createBroker } from "../../src/brokers/registry.js";
import { loadApp } from "../../src/app/load-app.js";
import type { Logger } from "../../src/log/logger.js";
import type { RunnerModel } from "../../src/runners/create-runner.js";
import { Worker } from "../../src/worker/Worker.js";
import { waitFor } from "../helpers.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SUPERVISE_ENTRY = path.join(ROOT, "test/runners/supervise-entry.ts");

/** Starts a Worker for the app on `model` in this process, as the CLI would (module path included). */
export async function startInProcess(options: {
  appFile: string;
  broker: string;
  model: RunnerModel;
  concurrency?: number;
  logger: Logger;
}): Promise<Worker> {
  const { app } = await loadApp(options.appFile);
  const { model } = options;
  const worker = new Worker(app, {
    broker: options.broker,
    concurrency: options.concurrency,
    logger: options.logger,
    appModule: options.appFile,
    model: model.kind,
    threads: model.kind === "threads" ? model.threads : undefined,
  });
  await worker.start();
  return worker;
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
