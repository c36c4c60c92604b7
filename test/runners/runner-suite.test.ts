/**
 * The runner suite: the same scenarios on every concurrency model. Handlers run in other threads
 * or processes, so they report through a JSON-lines file (pid, thread, child index with each
 * event), and threads and processes share messages through an SQLite file; the event loop, which
 * shares memory, uses the memory broker. A case that cannot apply to a model is skipped with the
 * reason, as in the broker conformance suite.
 */
import { randomUUID } from "node:crypto";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { memoryLogger, waitFor } from "../helpers.js";
import { tempDir, writeApp } from "../cli/run-cli.js";
import { type HandlerEvent, publish, readEvents, remaining, startInProcess, startSupervisor } from "./harness.js";

type Case = "success" | "retry-then-success" | "hard-timeout" | "crash" | "signal-at-deadline" | "sigterm-drain";

interface Running {
  /** Graceful stop with this grace; resolves with the exit code (0 in process). */
  stop(graceMs: number): Promise<number | null>;
  /** Every log line written, as objects. */
  logs(): Record<string, unknown>[];
}

interface Model {
  name: string;
  /** A handler that kills its thread takes the whole worker process down (no threads in it). */
  crashKillsProcess?: boolean;
  broker(dir: string): string;
  start(appFile: string, broker: string, options: { graceMs?: number }): Promise<Running>;
  skip: Partial<Record<Case, string>>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function inProcess(name: string, model: Parameters<typeof startInProcess>[0]["model"], skip: Model["skip"], broker: Model["broker"]): Model {
  return {
    name,
    skip,
    broker,
    async start(appFile, url) {
      const { logger, lines } = memoryLogger();
      const worker = await startInProcess({ appFile, broker: url, model, concurrency: 8, logger });
      let stopped = false;
      cleanups.push(() => (stopped ? undefined : worker.stop(100)));
      return {
        async stop(graceMs) {
          stopped = true;
          await worker.stop(graceMs);
          return 0;
        },
        logs: () => lines,
      };
    },
  };
}

/**
 * `wqueue worker --processes 2`, each child a CLI worker: on the event loop, or with `--model
 * threads --threads 1` (the flags go through the CLI's own parsing; the ready line must show them).
 */
function processes(name: string, flags: string[], readyModel: string, skip: Model["skip"]): Model {
  return {
    name,
    crashKillsProcess: flags.length === 0,
    broker: (dir) => `sqlite://${path.join(dir, "q.db")}?visibility=1500`,
    skip,
    async start(appFile, url, options) {
      const args = ["worker", "-a", appFile, "--broker", url, "-c", "2", "--shutdown-grace", String(options.graceMs ?? 10_000), ...flags];
      const supervisor = startSupervisor(2, args, { WQUEUE_TEST_BACKOFF_MS: "100" });
      cleanups.push(() => {
        for (const pid of supervisor.childPids()) killQuietly(pid);
        supervisor.child.kill("SIGKILL");
      });
      await waitFor(
        () => `two ready workers (last lines: ${supervisor.lines.slice(-6).join(" | ")})`,
        () => supervisor.lines.filter((line) => line.includes('"msg":"ready:')).length === 2,
        20_000,
      );
      for (const line of supervisor.lines.filter((l) => l.includes('"msg":"ready:'))) expect(line).toContain(`model ${readyModel} (concurrency`);
      return {
        async stop() {
          supervisor.child.kill("SIGTERM");
          return supervisor.exited;
        },
        logs: () =>
          supervisor.lines.flatMap((line) => {
            try {
              return [JSON.parse(line) as Record<string, unknown>];
            } catch {
              return [];
            }
          }),
      };
    },
  };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

const sqlite = (dir: string) => `sqlite://${path.join(dir, "q.db")}?visibility=1500`;

const models: Model[] = [
  inProcess(
    "event-loop",
    { kind: "event-loop" },
    {
      "hard-timeout": "the event loop cannot preempt a handler; the soft timeout aborts message.signal",
      crash: "process.exit in a handler ends the whole worker on the event loop; the processes model restarts it",
      "sigterm-drain": "in process, draining is Worker.stop's (test/worker.test.ts); here it runs across processes",
    },
    () => `memory://${randomUUID()}`,
  ),
  inProcess(
    "threads(2)",
    { kind: "threads", threads: 2 },
    { "sigterm-drain": "in process, draining is Worker.stop's (test/worker.test.ts); here it runs across processes" },
    sqlite,
  ),
  processes("processes 2 x event loop", [], "event-loop", {
    "hard-timeout": "the event loop cannot preempt a handler; the processes x threads model runs this case",
  }),
  processes("processes 2 x threads 1", ["--model", "threads", "--threads", "1"], "threads (1)", {}),
];

/**
 * The app every case runs: each handler appends {event, queue, body, attempt, pid, thread, child}
 * to EVENTS. `hang` has a 400 ms hard timeout (a listen option the thread runner reads).
 */
function suiteApp(dir: string): { file: string; events: string } {
  const events = path.join(dir, "events.jsonl");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
import { threadId } from "node:worker_threads";
type M = { queue: string; body: any; attempt: number; signal: AbortSignal };
const record = (event: string, m: M) =>
  appendFileSync(${JSON.stringify(events)}, JSON.stringify({ t: Date.now(), event, queue: m.queue, body: m.body, attempt: m.attempt, pid: process.pid, thread: threadId, child: process.env.WQUEUE_CHILD_INDEX }) + "\\n");
class Flaky extends Error { override name = "Flaky"; }
export const app = new WQueue({ retry: { baseDelayMs: 20, maxDelayMs: 100 } });
// App-wide middleware: it must run on every model, in the handler's thread or process.
app.use(async (m, next) => { record("middleware", m as M); await next(); });
app.listenEvents("ok", (m: M) => record("done", m));
app.listenEvents("flaky", (m: M) => {
  record("start", m);
  if (m.attempt === 1) throw new Flaky("first attempt fails: " + m.body.id);
  record("done", m);
});
app.listenEvents("hang", (m: M) => {
  record("start", m);
  if (m.body.hang && m.attempt === 1) for (;;) {}
  record("done", m);
}, { hardTimeoutMs: 400 } as {});
app.listenEvents("crash", async (m: M) => {
  record("start", m);
  if (m.body.crash && m.attempt === 1) process.exit(1);
  await new Promise((resolve) => setTimeout(resolve, 50));
  record("done", m);
});
app.listenEvents("slow", async (m: M) => {
  record("start", m);
  const aborted = await new Promise<boolean>((resolve) => {
    if (m.signal.aborted) return resolve(true);
    const timer = setTimeout(() => resolve(false), m.body.ms);
    m.signal.addEventListener("abort", () => { clearTimeout(timer); resolve(true); }, { once: true });
  });
  record(aborted ? "aborted" : "done", m);
});`,
  );
  return { file, events };
}

const ids = (events: HandlerEvent[], event: string, queue: string) =>
  events
    .filter((e) => e.event === event && e.queue === queue)
    .map((e) => e.body.id)
    .sort((a, b) => a - b);

describe.each(models)("runner suite: $name", (model) => {
  const test = (name: Case, title: string, body: () => Promise<void>, timeoutMs = 40_000) => {
    const reason = model.skip[name];
    if (reason !== undefined) it.skip(`${name}: ${title} (skipped: ${reason})`, body);
    else it(`${name}: ${title}`, body, timeoutMs);
  };

  test("success", "runs each message's handler once and acks it", async () => {
    const dir = tempDir();
    const { file, events } = suiteApp(dir);
    const url = model.broker(dir);
    const worker = await model.start(file, url, {});
    await publish(url, "ok", [1, 2, 3, 4, 5, 6].map((id) => ({ id })));
    await waitFor("six handled messages", () => ids(readEvents(events), "done", "ok").length === 6, 15_000);
    await waitFor("the queue to be empty", async () => (await remaining(url, "ok")) === 0);
    expect(await worker.stop(5000)).toBe(0);
    expect(ids(readEvents(events), "done", "ok")).toEqual([1, 2, 3, 4, 5, 6]);
    // The app's middleware ran around each handler, where the handler ran.
    const where = (e: HandlerEvent) => `${e.pid}/${e.thread}/${e.body.id}`;
    const all = readEvents(events).filter((e) => e.queue === "ok");
    expect(all.filter((e) => e.event === "middleware").map(where).sort()).toEqual(all.filter((e) => e.event === "done").map(where).sort());
  });

  test("retry-then-success", "retries a throwing handler, keeping the error's name, message and stack, then succeeds", async () => {
    const dir = tempDir();
    const { file, events } = suiteApp(dir);
    const url = model.broker(dir);
    const worker = await model.start(file, url, {});
    await publish(url, "flaky", [{ id: 1 }, { id: 2 }]);
    await waitFor("both messages to succeed", () => ids(readEvents(events), "done", "flaky").length === 2, 15_000);
    const done = readEvents(events).filter((e) => e.event === "done" && e.queue === "flaky");
    expect(done.map((e) => e.attempt)).toEqual([2, 2]);
    const failures = worker.logs().filter((l) => l.msg === "handler failed; will retry");
    expect(failures.length).toBeGreaterThanOrEqual(2);
    const err = failures[0]?.err as { name: string; message: string; stack: string };
    expect(err.name).toBe("Flaky");
    expect(err.message).toMatch(/^first attempt fails: [12]$/);
    expect(err.stack).toContain("Flaky: first attempt fails");
    expect(err.stack.split("\n").length).toBeGreaterThan(1);
    expect(await worker.stop(5000)).toBe(0);
  });

  test("hard-timeout", "terminates and replaces a thread stuck past hardTimeoutMs; the message is retried, others unaffected", async () => {
    const dir = tempDir();
    const { file, events } = suiteApp(dir);
    const url = model.broker(dir);
    const worker = await model.start(file, url, {});
    await publish(url, "hang", [{ id: 1, hang: true }]);
    await waitFor("the hanging handler to start", () => ids(readEvents(events), "start", "hang").length === 1);
    // While one thread spins, the other keeps handling messages.
    await publish(url, "ok", [1, 2, 3, 4, 5].map((id) => ({ id })));
    // (Whether they finish before the 400 ms kill depends on the machine's load: not asserted.)
    await waitFor("the other messages", () => ids(readEvents(events), "done", "ok").length === 5, 10_000);
    await waitFor("the hung message to succeed on its retry", () => ids(readEvents(events), "done", "hang").length === 1, 10_000);
    const all = readEvents(events);
    const hang = all.filter((e) => e.queue === "hang" && e.event !== "middleware");
    expect(hang.map((e) => [e.event, e.attempt])).toEqual([["start", 1], ["start", 2], ["done", 2]]);
    // The retry ran on a new thread (the stuck one was terminated); thread ids repeat across processes.
    expect([hang[2]?.pid, hang[2]?.thread]).not.toEqual([hang[0]?.pid, hang[0]?.thread]);
    const failure = worker.logs().find((l) => l.msg === "handler failed; will retry");
    expect(failure?.err).toMatchObject({ name: "HandlerTimeout", message: expect.stringContaining("400 ms") });
    expect(await worker.stop(5000)).toBe(0);
  });

  test("crash", "a handler that kills its thread or process: the message comes back and succeeds, the rest go on", async () => {
    const dir = tempDir();
    const { file, events } = suiteApp(dir);
    const url = model.broker(dir);
    const worker = await model.start(file, url, {});
    await publish(url, "crash", [{ id: 1, crash: true }, ...[2, 3, 4, 5, 6].map((id) => ({ id }))]);
    await waitFor("every message to succeed", () => ids(readEvents(events), "done", "crash").length === 6, 20_000);
    const crashed = readEvents(events).filter((e) => e.queue === "crash" && e.body.id === 1 && e.event !== "middleware");
    expect(crashed.map((e) => [e.event, e.attempt])).toEqual([["start", 1], ["start", 2], ["done", 2]]);
    const logs = worker.logs();
    if (model.crashKillsProcess) {
      // The broker redelivered it after its visibility timeout; the supervisor restarted the child.
      expect(logs.some((l) => String(l.msg).includes("restarting in"))).toBe(true);
      await waitFor("the restarted child to be ready", () => worker.logs().filter((l) => String(l.msg).startsWith("ready:")).length === 3, 15_000);
    } else {
      const failure = logs.find((l) => l.msg === "handler failed; will retry");
      expect(failure?.err).toMatchObject({ name: "HandlerCrashed", message: expect.stringContaining("exited with code 1") });
    }
    expect(await worker.stop(5000)).toBe(0);
    await waitFor("the queue to be empty", async () => (await remaining(url, "crash")) === 0);
  });

  test("signal-at-deadline", "message.signal aborts in the handler when the shutdown deadline passes", async () => {
    const dir = tempDir();
    const { file, events } = suiteApp(dir);
    const url = model.broker(dir);
    const worker = await model.start(file, url, { graceMs: 300 });
    await publish(url, "slow", [{ id: 1, ms: 60_000 }]);
    await waitFor("the slow handler to start", () => ids(readEvents(events), "start", "slow").length === 1);
    const started = Date.now();
    expect(await worker.stop(300)).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    await waitFor("the handler to see the abort", () => ids(readEvents(events), "aborted", "slow").length === 1);
    expect(ids(readEvents(events), "done", "slow")).toEqual([]);
    // Given back, not lost.
    expect(await remaining(url, "slow")).toBe(1);
  });

  test("sigterm-drain", "SIGTERM lets in-flight handlers finish, exits 0, and loses no message", async () => {
    const dir = tempDir();
    const { file, events } = suiteApp(dir);
    const url = model.broker(dir);
    const worker = await model.start(file, url, {});
    const total = 12;
    await publish(url, "slow", Array.from({ length: total }, (_, i) => ({ id: i + 1, ms: 1000 })));
    await waitFor("handlers in both children", () => new Set(readEvents(events).map((e) => e.child)).size === 2, 15_000);
    expect(await worker.stop(10_000)).toBe(0);
    const after = readEvents(events);
    // Every handler that started finished (none aborted), and none ran twice.
    expect(ids(after, "done", "slow")).toEqual(ids(after, "start", "slow"));
    expect(ids(after, "aborted", "slow")).toEqual([]);
    const done = ids(after, "done", "slow");
    expect(new Set(done).size).toBe(done.length);
    expect(done.length).toBeGreaterThanOrEqual(2);
    // The rest are still on the broker, ready for the next worker.
    expect(done.length + (await remaining(url, "slow"))).toBe(total);
  });
});
