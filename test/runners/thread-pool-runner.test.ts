/**
 * ThreadPoolRunner on its own (no broker): what crosses the thread boundary and what comes back.
 * The scenarios every model shares are in runner-suite.test.ts.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RunResult } from "../../src/pipeline/outcome.js";
import type { DeliveryData } from "../../src/pipeline/run-handler.js";
import { createRunner } from "../../src/runners/create-runner.js";
import { EventLoopRunner } from "../../src/runners/EventLoopRunner.js";
import { type ThreadPoolRunnerOptions, ThreadPoolRunner, type ThreadSubscription } from "../../src/runners/ThreadPoolRunner.js";
import { tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

const runners: ThreadPoolRunner[] = [];
afterEach(async () => {
  await Promise.all(runners.splice(0).map((runner) => runner.close()));
});

function delivery(queue: string, body: Uint8Array | string, attempt = 1): DeliveryData {
  return { id: "m1", queue, body: typeof body === "string" ? Buffer.from(body) : body, headers: { h: "v" }, key: "k", attempt };
}

/** A runner over an app whose handlers are `source` (code using `app`); every queue decodes JSON. */
async function threads(
  source: string,
  queues: Record<string, Partial<ThreadSubscription>>,
  options: Partial<ThreadPoolRunnerOptions> = {},
): Promise<ThreadPoolRunner> {
  const dir = tempDir();
  const file = writeApp(dir, "app.ts", `export const app = new WQueue();\n${source}`);
  const subscriptions = new Map(Object.entries(queues).map(([queue, s]) => [`default/${queue}`, { format: "json" as const, ...s }]));
  const runner = new ThreadPoolRunner({ threads: 2, appModule: file, subscriptions, ...options });
  runners.push(runner);
  await runner.start();
  return runner;
}

const never = new AbortController().signal;

/** The handler reports what it saw by throwing it: the failure carries the message back. */
function reported(outcome: RunResult): unknown {
  if (outcome.type !== "failed") throw new Error(`expected a failure, got ${JSON.stringify(outcome)}`);
  return JSON.parse(outcome.error.message);
}

describe("ThreadPoolRunner", () => {
  it("gives the thread the message's bytes in a fresh transferred buffer and leaves the delivery's intact", async () => {
    const runner = await threads(
      `app.listenEvents("raw", (m) => {
        throw new Error(JSON.stringify({ bytes: [...m.raw], own: m.raw.byteOffset === 0 && m.raw.buffer.byteLength === m.raw.byteLength,
          body: [...m.body], headers: m.headers, key: m.key, id: m.id, attempt: m.attempt, queue: m.queue }));
      }, { decode: "bytes" });`,
      { raw: { format: "bytes" } },
    );
    // Not UTF-8, and a view into a larger buffer, as pooled Buffers are.
    const pool = new Uint8Array([9, 9, 0xff, 0x00, 0xc3, 0x28, 7, 9]);
    const body = pool.subarray(2, 7);
    const seen = reported(await runner.run("default/raw", delivery("raw", body, 2), never));
    expect(seen).toEqual({ bytes: [0xff, 0, 0xc3, 0x28, 7], own: true, body: [0xff, 0, 0xc3, 0x28, 7], headers: { h: "v" }, key: "k", id: "m1", attempt: 2, queue: "raw" });
    expect([...body]).toEqual([0xff, 0, 0xc3, 0x28, 7]);
    expect(pool.byteLength).toBe(8);
  });

  it("returns a handler's error with its name, message and stack from the thread", async () => {
    const runner = await threads(`class PaymentDeclined extends Error { override name = "PaymentDeclined"; }
app.listenEvents("pay", () => { throw new PaymentDeclined("card 42 declined"); });`, { pay: {} });
    const outcome = await runner.run("default/pay", delivery("pay", "{}"), never);
    expect(outcome).toMatchObject({ type: "failed", error: { name: "PaymentDeclined", message: "card 42 declined" } });
    expect(outcome.type === "failed" && outcome.error.stack).toMatch(/^PaymentDeclined: card 42 declined\n\s+at /);
    // The runner judges nothing: on any attempt it is the same raw failure (the worker's retry step decides).
    expect(await runner.run("default/pay", delivery("pay", "{}", 30), never)).toMatchObject({ type: "failed", error: { name: "PaymentDeclined" } });
  });

  it("acks, and dead-letters an undecodable body in the thread", async () => {
    const runner = await threads(`app.listenEvents("ok", () => {});`, { ok: {} });
    expect(await runner.run("default/ok", delivery("ok", '{"a":1}'), never)).toEqual({ type: "ack" });
    expect(await runner.run("default/ok", delivery("ok", "not json"), never)).toMatchObject({ type: "dead", reason: { reason: "undecodable" } });
  });

  it("runs handlers on different threads at the same time", async () => {
    const dir = tempDir();
    // Each handler blocks its thread until the other has started: only true parallelism ends it.
    const runner = await threads(
      `import { existsSync, writeFileSync } from "node:fs";
app.listenEvents("spin", (m) => {
  writeFileSync(${JSON.stringify(dir)} + "/started-" + m.body.me, "");
  const deadline = Date.now() + 15000;
  while (!existsSync(${JSON.stringify(dir)} + "/started-" + m.body.other)) if (Date.now() > deadline) throw new Error("alone");
});`,
      { spin: {} },
    );
    const outcomes = await Promise.all([
      runner.run("default/spin", delivery("spin", '{"me":"a","other":"b"}'), never),
      runner.run("default/spin", delivery("spin", '{"me":"b","other":"a"}'), never),
    ]);
    expect(outcomes).toEqual([{ type: "ack" }, { type: "ack" }]);
  }, 30_000);

  it("aborts message.signal in the thread when the caller's signal aborts", async () => {
    const started = path.join(tempDir(), "started");
    const runner = await threads(
      `import { writeFileSync } from "node:fs";
app.listenEvents("wait", (m) => new Promise((_, reject) => {
  m.signal.addEventListener("abort", () => reject(m.signal.reason));
  writeFileSync(${JSON.stringify(started)}, "");
}));`,
      { wait: {} },
    );
    const controller = new AbortController();
    const running = runner.run("default/wait", delivery("wait", "{}"), controller.signal);
    // The handler is running (its thread has it, its listener is on) before the abort.
    await waitFor("the handler to start in its thread", () => existsSync(started));
    const reason = new Error("worker shutdown deadline passed");
    reason.name = "ShutdownDeadline";
    controller.abort(reason);
    expect(await running).toMatchObject({ type: "failed", error: { name: "ShutdownDeadline", message: "worker shutdown deadline passed" } });
  });

  it("never starts a waiting message whose signal aborted: it comes back as HandlerAbandoned", async () => {
    const dir = tempDir();
    const runner = await threads(
      `import { appendFileSync } from "node:fs";
app.listenEvents("wait", (m) => { appendFileSync(${JSON.stringify(path.join(dir, "ran"))}, m.body.n + "\\n");
  return new Promise((resolve) => m.signal.addEventListener("abort", resolve)); });`,
      { wait: {} },
      { threads: 1 },
    );
    const controller = new AbortController();
    const first = runner.run("default/wait", delivery("wait", '{"n":1}'), controller.signal);
    const second = runner.run("default/wait", delivery("wait", '{"n":2}'), controller.signal);
    // The first holds the only thread (a message waits here until the end of the turn it came in).
    await waitFor("the first handler to start", () => existsSync(path.join(dir, "ran")));
    controller.abort(new Error("deadline"));
    expect(await second).toMatchObject({ type: "retry", delayMs: 0, error: { name: "HandlerAbandoned" } });
    expect(await first).toEqual({ type: "ack" });
    expect(readFileSync(path.join(dir, "ran"), "utf8")).toBe("1\n");
  });

  it("terminates threads still running at close() after closeGraceMs: their messages go back as RunnerClosed", async () => {
    const started = path.join(tempDir(), "started");
    const runner = await threads(
      `import { writeFileSync } from "node:fs";
app.listenEvents("stuck", () => { writeFileSync(${JSON.stringify(started)}, ""); for (;;) {} });`,
      { stuck: {} },
      { closeGraceMs: 100 },
    );
    const running = runner.run("default/stuck", delivery("stuck", "{}"), never);
    await waitFor("the stuck handler to start in its thread", () => existsSync(started));
    await runner.close();
    expect(await running).toMatchObject({ type: "retry", delayMs: 0, error: { name: "RunnerClosed" } });
    expect(await runner.run("default/stuck", delivery("stuck", "{}"), never)).toMatchObject({ error: { name: "RunnerClosed" } });
  });

  it("reports an uncaught exception in the thread as HandlerCrashed with the thread's stack", async () => {
    const runner = await threads(
      `app.listenEvents("later", () => { setTimeout(() => { throw new RangeError("bad index 7"); }, 1); return new Promise((r) => setTimeout(r, 1000)); });
app.listenEvents("ok", () => {});`,
      { later: {}, ok: {} },
    );
    const outcome = await runner.run("default/later", delivery("later", "{}"), never);
    expect(outcome).toMatchObject({ type: "failed", error: { name: "HandlerCrashed", message: expect.stringContaining("RangeError: bad index 7") } });
    expect(outcome.type === "failed" && outcome.error.stack).toContain("app.ts");
    // The pool is whole again.
    expect(await Promise.all([1, 2].map(() => runner.run("default/ok", delivery("ok", "{}"), never)))).toEqual([{ type: "ack" }, { type: "ack" }]);
  });

  it("confines an out-of-memory handler to its thread (resourceLimits): HandlerCrashed, a retry", async () => {
    const runner = await threads(
      `app.listenEvents("hog", () => { const keep = []; for (;;) keep.push(new Array(100_000).fill(keep.length)); });
app.listenEvents("ok", () => {});`,
      { hog: {}, ok: {} },
      { resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } },
    );
    const outcome = await runner.run("default/hog", delivery("hog", "{}"), never);
    expect(outcome).toMatchObject({ type: "failed", error: { name: "HandlerCrashed", message: expect.stringMatching(/memory/i) } });
    expect(await runner.run("default/ok", delivery("ok", "{}"), never)).toEqual({ type: "ack" });
  }, 30_000);

  it("start() fails with AppLoadError when threads cannot find the handlers", async () => {
    const dir = tempDir();
    const file = writeApp(
      dir,
      "main-only.ts",
      `import { isMainThread } from "node:worker_threads";
export const app = new WQueue();
if (isMainThread) app.listenEvents("q", () => {});`,
    );
    const runner = new ThreadPoolRunner({ threads: 1, appModule: file, subscriptions: new Map([["default/q", { format: "json" }]]) });
    runners.push(runner);
    await expect(runner.start()).rejects.toMatchObject({ name: "AppLoadError", message: expect.stringContaining("found no handler for default/q") });
  });

  it("start() fails with AppLoadError when the module throws in a thread", async () => {
    const file = writeApp(tempDir(), "no-threads.ts", `import { isMainThread } from "node:worker_threads";
if (!isMainThread) throw new Error("this module refuses threads");
export const app = new WQueue();`);
    const runner = new ThreadPoolRunner({ threads: 1, appModule: file, subscriptions: new Map([["default/q", { format: "json" }]]) });
    runners.push(runner);
    await expect(runner.start()).rejects.toMatchObject({ name: "AppLoadError", message: expect.stringContaining("this module refuses threads") });
  });

  it("rejects bad settings with ConfigError", () => {
    const subscriptions = new Map([["default/q", { format: "json" as const, hardTimeoutMs: -1 }]]);
    expect(() => new ThreadPoolRunner({ threads: 1, appModule: "x.ts", subscriptions })).toThrow(/hardTimeoutMs must be/);
    expect(() => new ThreadPoolRunner({ threads: 0, appModule: "x.ts", subscriptions: new Map() })).toThrow(/threads must be/);
    expect(() => new ThreadPoolRunner({ threads: 1, appModule: "x.ts", subscriptions: new Map(), coalesceMs: -1 })).toThrow(/coalesceMs must be/);
  });
});

/**
 * Messages submitted in one turn share a piscina task (coalesceMs). The tests give coalesceMs a
 * minute so that a loaded machine's slow round trips cannot keep messages apart, and run one
 * message of each subscription first: until the runner has seen one come back, they go alone.
 */
describe("ThreadPoolRunner: messages sharing a task", () => {
  const ok: RunResult = { type: "ack" };

  it("gives each message of a shared task its own outcome: one throws, one is undecodable, the others ack", async () => {
    const ran = path.join(tempDir(), "ran");
    const runner = await threads(
      `import { appendFileSync } from "node:fs";
import { threadId } from "node:worker_threads";
app.listenEvents("work", (m) => {
  appendFileSync(${JSON.stringify(ran)}, m.body.n + " " + threadId + "\\n");
  if (m.body.fail) throw new Error("message " + m.body.n + " failed");
});`,
      { work: {} },
      { threads: 2, coalesceMs: 60_000 },
    );
    expect(await runner.run("default/work", delivery("work", '{"n":0}'), never)).toEqual(ok);
    const bodies = ['{"n":1}', '{"n":2,"fail":true}', "not json", '{"n":4}'];
    const outcomes = await Promise.all(bodies.map((body) => runner.run("default/work", delivery("work", body), never)));
    expect(outcomes).toEqual([
      ok,
      { type: "failed", error: expect.objectContaining({ name: "Error", message: "message 2 failed" }) },
      expect.objectContaining({ type: "dead", reason: expect.objectContaining({ reason: "undecodable" }) }),
      ok,
    ]);
    // They shared a task: sent one by one, 1 and 2 would have gone to different threads (both were free).
    const threadOf = new Map(readFileSync(ran, "utf8").trim().split("\n").map((line) => line.split(" ") as [string, string]));
    expect(threadOf.get("1")).toBe(threadOf.get("2"));
  });

  it("a crash fails only its own task: the message at fault HandlerCrashed, those acked before it acked, those after it given back unrun; other threads' messages succeed", async () => {
    const dir = tempDir();
    const runner = await threads(
      `import { appendFileSync, existsSync, writeFileSync } from "node:fs";
app.listenEvents("work", (m) => {
  appendFileSync(${JSON.stringify(path.join(dir, "ran"))}, m.body.n + "\\n");
  if (m.body.crash) process.exit(1);
});
app.listenEvents("slow", async () => {
  writeFileSync(${JSON.stringify(path.join(dir, "slow-started"))}, "");
  while (!existsSync(${JSON.stringify(path.join(dir, "release"))})) await new Promise((r) => setTimeout(r, 5));
});`,
      { work: {}, slow: {} },
      { threads: 2, coalesceMs: 60_000 },
    );
    expect(await runner.run("default/work", delivery("work", '{"n":0}'), never)).toEqual(ok);
    // One thread busy with a slow message; the other gets the next three in one task.
    const slow = runner.run("default/slow", delivery("slow", "{}"), never);
    await waitFor("the slow handler to start", () => existsSync(path.join(dir, "slow-started")));
    const outcomes = await Promise.all(['{"n":1}', '{"n":2,"crash":true}', '{"n":3}'].map((body) => runner.run("default/work", delivery("work", body), never)));
    expect(outcomes[0]).toEqual(ok);
    expect(outcomes[1]).toMatchObject({ type: "failed", error: { name: "HandlerCrashed", message: expect.stringContaining("exited with code 1") } });
    expect(outcomes[2]).toMatchObject({ type: "retry", delayMs: 0, keepAttempt: true, error: { name: "HandlerAbandoned" } });
    expect(readFileSync(path.join(dir, "ran"), "utf8")).toBe("0\n1\n2\n");
    // The other thread's message was untouched by the crash.
    writeFileSync(path.join(dir, "release"), "");
    expect(await slow).toEqual(ok);
    // The pool is whole again.
    expect(await Promise.all([5, 6, 7].map((n) => runner.run("default/work", delivery("work", JSON.stringify({ n })), never)))).toEqual([ok, ok, ok]);
  }, 30_000);

  it("never starts a message of a shared task whose signal aborted while it waited behind another", async () => {
    const dir = tempDir();
    const runner = await threads(
      `import { appendFileSync } from "node:fs";
app.listenEvents("wait", (m) => { appendFileSync(${JSON.stringify(path.join(dir, "ran"))}, m.body.n + "\\n");
  if (m.body.n > 0) return new Promise((resolve) => m.signal.addEventListener("abort", resolve)); });`,
      { wait: {} },
      { threads: 1, coalesceMs: 60_000 },
    );
    expect(await runner.run("default/wait", delivery("wait", '{"n":0}'), never)).toEqual(ok);
    const controller = new AbortController();
    const first = runner.run("default/wait", delivery("wait", '{"n":1}'), controller.signal);
    const second = runner.run("default/wait", delivery("wait", '{"n":2}'), controller.signal);
    await waitFor("the first handler to start", () => readFileSync(path.join(dir, "ran"), "utf8").includes("1\n"));
    controller.abort(new Error("deadline"));
    expect(await first).toEqual(ok);
    expect(await second).toMatchObject({ type: "retry", delayMs: 0, error: { name: "HandlerAbandoned" } });
    expect(readFileSync(path.join(dir, "ran"), "utf8")).toBe("0\n1\n");
  });

  it("with coalesceMs 0 sends every message alone", async () => {
    const ran = path.join(tempDir(), "ran");
    const runner = await threads(
      `import { appendFileSync } from "node:fs";
import { threadId } from "node:worker_threads";
app.listenEvents("work", (m) => { appendFileSync(${JSON.stringify(ran)}, m.body.n + " " + threadId + "\\n"); });`,
      { work: {} },
      { threads: 2, coalesceMs: 0 },
    );
    expect(await runner.run("default/work", delivery("work", '{"n":0}'), never)).toEqual(ok);
    expect(await Promise.all([1, 2].map((n) => runner.run("default/work", delivery("work", JSON.stringify({ n })), never)))).toEqual([ok, ok]);
    const threadOf = new Map(readFileSync(ran, "utf8").trim().split("\n").map((line) => line.split(" ") as [string, string]));
    expect(threadOf.get("1")).not.toBe(threadOf.get("2"));
  });
});

describe("createRunner", () => {
  const handlers = new Map([["default/q", { handler: () => {}, format: "json" as const }]]);

  it("builds the event loop runner", async () => {
    const runner = await createRunner({ kind: "event-loop" }, handlers, undefined);
    expect(runner).toBeInstanceOf(EventLoopRunner);
    expect(runner.model).toBe("event-loop");
    expect(runner.capacity).toBeUndefined();
  });

  it("builds a thread pool with its capacity", async () => {
    const runner = await createRunner({ kind: "threads", threads: 3 }, handlers, "app.ts");
    expect(runner.model).toBe("threads");
    expect(runner.capacity).toBe(3);
    await runner.close();
  });

  // In a process of its own: this file imports the thread pool itself.
  it.each([
    { model: "event-loop", loaded: false },
    { model: "threads", loaded: true },
  ])("a worker whose queues run on the $model model loads piscina: $loaded", ({ model, loaded }) => {
    const dir = tempDir();
    const app = writeApp(dir, "app.mjs", `export const app = new WQueue({ broker: "memory://" });\napp.listenEvents("q", async () => {});`);
    const script = `
      import { createRequire } from "node:module";
      import { Worker } from ${JSON.stringify(path.resolve("dist/index.js"))};
      const { app } = await import(${JSON.stringify(app)});
      const worker = new Worker(app, { model: ${JSON.stringify(model)}, threads: 1, appModule: ${JSON.stringify(app)} });
      await worker.start();
      const loaded = Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes("/node_modules/piscina/"));
      await worker.stop();
      console.log(JSON.stringify({ loaded }));`;
    const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: dir, encoding: "utf8" });
    expect(JSON.parse(output.trim().split("\n").at(-1) ?? "")).toEqual({ loaded });
  });

  it("refuses threads without an app module", async () => {
    await expect(createRunner({ kind: "threads", threads: 2 }, handlers, undefined)).rejects.toThrow(
      "threads need an app module path: run through the CLI or pass appModule",
    );
  });
});
