/**
 * User middleware under the real Worker on a real broker (SQLite file), on the event loop and on
 * worker threads: it must run where the handler runs, in the documented order, and be able to
 * skip the handler or turn its error into RetryLater / DeadLetterNow. Handlers and middleware
 * report through a JSON-lines file, which every thread can append to.
 */
import path from "node:path";
import { threadId } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { createBroker } from "../src/brokers/registry.js";
import { loadApp } from "../src/app/load-app.js";
import { listDeadLetters } from "../src/dead-letters/dead-letters.js";
import { Worker } from "../src/worker/Worker.js";
import { tempDir, writeApp } from "./cli/run-cli.js";
import { memoryLogger, waitFor } from "./helpers.js";
import { publish, readEvents, remaining } from "./runners/harness.js";

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(1000)));
});

/**
 * The app: two app-wide middleware (outer, inner), one queue middleware per queue, handlers that
 * record what they see. `once` skips a body id already done (a file per id stands for Redis SET NX
 * here, so that every thread sees it); `convert` turns the handler's errors into decisions.
 */
function middlewareApp(dir: string): { file: string; events: string } {
  const events = path.join(dir, "events.jsonl");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { threadId } from "node:worker_threads";
const record = (event: string, m: { queue: string; body: any; attempt: number }) =>
  appendFileSync(${JSON.stringify(events)}, JSON.stringify({ event, queue: m.queue, body: m.body, attempt: m.attempt, thread: threadId, pid: process.pid }) + "\\n");
export const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 50 } });
app.use(async (m, next) => { record("outer in", m); await next(); record("outer out", m); });
app.use(async (m, next) => { record("inner in", m); await next(); record("inner out", m); });

app.listenEvents("order", (m) => record("handler", m), {
  middleware: [async (m, next) => { record("queue in", m); await next(); record("queue out", m); }],
});

const marker = (id: unknown) => ${JSON.stringify(dir)} + "/done-" + String(id);
app.listenEvents("once", (m: any) => record("handler", m), {
  middleware: [async (m: any, next) => {
    if (existsSync(marker(m.body.id))) return record("skipped", m);
    await next();
    writeFileSync(marker(m.body.id), "");
  }],
});

app.listenEvents("convert", (m: any) => {
  record("handler", m);
  if (m.attempt === 1) throw new Error(m.body.fatal ? "bad data" : "busy");
}, {
  middleware: [async (m: any, next) => {
    try { await next(); } catch (error) {
      if (m.body.fatal) throw new DeadLetterNow("refused: " + (error as Error).message);
      throw new RetryLater(10, "try again: " + (error as Error).message);
    }
  }],
});`,
  );
  return { file, events };
}

const models = [
  { name: "event loop", model: "event-loop" as const },
  { name: "threads", model: "threads" as const },
];

describe.each(models)("user middleware on the $name", ({ model }) => {
  async function start() {
    const dir = tempDir();
    const { file, events } = middlewareApp(dir);
    const url = `sqlite://${path.join(dir, "q.db")}`;
    const { app } = await loadApp(file);
    const { logger, lines } = memoryLogger();
    const worker = new Worker(app, { broker: url, logger, appModule: file, model, threads: 2, concurrency: 4 });
    workers.push(worker);
    await worker.start();
    return { url, events, lines };
  }

  it("runs app.use middleware in registration order outside the queue's own, around the handler, in the handler's thread", async () => {
    const { url, events } = await start();
    await publish(url, "order", [{ id: 1 }]);
    await waitFor("the last middleware to return", () => readEvents(events).some((e) => e.event === "outer out"), 15_000);
    const seen = readEvents(events).filter((e) => e.queue === "order");
    expect(seen.map((e) => e.event)).toEqual(["outer in", "inner in", "queue in", "handler", "queue out", "inner out", "outer out"]);
    // One thread for all of it: on threads, not the worker's main thread.
    expect(new Set(seen.map((e) => e.thread)).size).toBe(1);
    if (model === "threads") expect(seen[0]?.thread).not.toBe(threadId);
    else expect(seen[0]?.thread).toBe(threadId);
    await waitFor("the message to be acked", async () => (await remaining(url, "order")) === 0);
  });

  it("lets a middleware skip the handler: a duplicate is acked without running it", async () => {
    const { url, events } = await start();
    await publish(url, "once", [{ id: 7 }]);
    await waitFor("the first copy handled", async () => (await remaining(url, "once")) === 0, 15_000);
    await publish(url, "once", [{ id: 7 }]);
    await waitFor("the duplicate to be skipped", () => readEvents(events).some((e) => e.event === "skipped"), 15_000);
    await waitFor("the duplicate to be acked", async () => (await remaining(url, "once")) === 0);
    expect(readEvents(events).filter((e) => e.queue === "once" && e.event === "handler")).toHaveLength(1);
  });

  it("lets a middleware turn the handler's error into RetryLater or DeadLetterNow", async () => {
    const { url, events, lines } = await start();
    await publish(url, "convert", [{ id: 1 }, { id: 2, fatal: true }]);
    await waitFor("the retried message to succeed", () => readEvents(events).some((e) => e.body.id === 1 && e.attempt === 2), 15_000);
    const retry = lines.find((l) => l.msg === "handler failed; will retry");
    expect(retry).toMatchObject({ retryInMs: 10, err: { name: "RetryLater", message: "try again: busy" } });
    const broker = await createBroker(url);
    await broker.connect();
    try {
      let dead: Awaited<ReturnType<typeof listDeadLetters>> = [];
      await waitFor("the refused message in the dead-letter queue", async () => {
        dead = await listDeadLetters(broker, "convert.dead", 10);
        return dead.length === 1;
      });
      expect(dead[0]).toMatchObject({ reason: "dead-letter-requested", attempts: 1 });
      expect(dead[0]?.error).toContain("refused: bad data");
    } finally {
      await broker.close();
    }
    // The fatal one ran once (no retry), the other twice.
    const handled = readEvents(events).filter((e) => e.queue === "convert" && e.event === "handler");
    expect(handled.map((e) => [e.body.id, e.attempt]).sort()).toEqual([[1, 1], [1, 2], [2, 1]]);
  });
});
