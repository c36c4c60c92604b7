import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker } from "../../src/brokers/contract.js";
import { createBroker } from "../../src/brokers/registry.js";
import { listDeadLetters } from "../../src/dead-letters/dead-letters.js";
import type { Worker } from "../../src/worker/Worker.js";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { memoryLogger, waitFor } from "../helpers.js";
import { startInProcess } from "../runners/harness.js";

/**
 * Batch handlers on real brokers (SQLite, reliable Redis, RabbitMQ), on the event loop and on
 * worker threads: batch sizes, per-message failures, whole-batch failures, the wait window, and a
 * `wqueue worker` SIGKILLed mid-batch. The app is a module on disk (threads import it); each
 * batch appends one JSON line to a file, which is what the tests read.
 */

const dir = tempDir();
const workers: Worker[] = [];
const clis: RunningCli[] = [];
const brokers: Broker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(2000)));
  for (const cli of clis.splice(0)) cli.child.kill("SIGKILL");
});
afterAll(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

interface BatchLine {
  ids: number[];
  attempts: number[];
  ok: boolean;
  at: number;
}

type Mode = "ok" | "fail-flagged" | "throw-first";

/** An app with one batch queue; `mode` says what the handler does with a batch. */
function batchApp(queue: string, mode: Mode, batch: { maxSize: number; maxWaitMs: number }): { file: string; out: string } {
  const id = randomUUID().slice(0, 8);
  const out = path.join(dir, `${id}.jsonl`);
  const body = {
    ok: "log(true);",
    "fail-flagged": `log(true);
  return { failed: messages.filter((m) => m.body.fail).map((m) => ({ message: m, error: new Error("bad " + m.body.id) })) };`,
    "throw-first": `if (messages.some((m) => m.attempt === 1)) {
    log(false);
    throw new Error("the whole batch fails");
  }
  log(true);`,
  }[mode];
  const file = writeApp(
    dir,
    `${id}.ts`,
    `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 30 } });
app.listenEvents(${JSON.stringify(queue)}, async (messages: { body: { id: number; fail?: boolean }; attempt: number }[]) => {
  const log = (ok: boolean) => appendFileSync(${JSON.stringify(out)}, JSON.stringify({ ids: messages.map((m) => m.body.id), attempts: messages.map((m) => m.attempt), ok, at: Date.now() }) + "\\n");
  ${body}
}, { batch: ${JSON.stringify(batch)} });`,
  );
  return { file, out };
}

const linesOf = (out: string): BatchLine[] =>
  existsSync(out)
    ? readFileSync(out, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as BatchLine)
    : [];

const BROKERS: { name: string; url: () => string }[] = [
  { name: "SQLite", url: () => `sqlite://${path.join(dir, `${randomUUID().slice(0, 8)}.db`)}?poll=20` },
  { name: "reliable Redis", url: () => "redis://127.0.0.1:6379" },
  { name: "RabbitMQ", url: () => "amqp://guest:guest@127.0.0.1:5672" },
];
const MODELS = [{ kind: "event-loop" } as const, { kind: "threads", threads: 2 } as const];
const MATRIX = BROKERS.flatMap((broker) => MODELS.map((model) => ({ broker: broker.name, url: broker.url, model, label: `${broker.name}, ${model.kind}` })));

async function openBroker(url: string): Promise<Broker> {
  const broker = await createBroker(url);
  await broker.connect();
  brokers.push(broker);
  return broker;
}

async function publish(broker: Broker, queue: string, bodies: object[]): Promise<void> {
  for (let start = 0; start < bodies.length; start += 200) {
    await broker.publish(
      queue,
      bodies.slice(start, start + 200).map((body) => ({ body: Buffer.from(JSON.stringify(body)) })),
    );
  }
}

async function start(appFile: string, url: string, model: (typeof MODELS)[number], concurrency = 100): Promise<Worker> {
  const worker = await startInProcess({ appFile, broker: url, model, concurrency, logger: memoryLogger().logger });
  workers.push(worker);
  return worker;
}

const queueName = (what: string) => `batch.${what}.${randomUUID().slice(0, 8)}`;

describe.each(MATRIX)("batch handlers on $label", ({ url: urlOf, model }) => {
  it("1,000 messages with maxSize 100: batches of at most 100, every message handled once", async () => {
    const url = urlOf();
    const queue = queueName("size");
    const { file, out } = batchApp(queue, "ok", { maxSize: 100, maxWaitMs: 50 });
    const broker = await openBroker(url);
    await publish(broker, queue, Array.from({ length: 1000 }, (_, id) => ({ id })));
    const worker = await start(file, url, model);
    const handled = () => linesOf(out).flatMap((line) => line.ids);
    await waitFor(() => `1,000 handled (${handled().length})`, () => handled().length >= 1000, 60_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0, 10_000);
    const lines = linesOf(out);
    const sizes = lines.map((line) => line.ids.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(100);
    // A backlog is read in batches, not one message at a time.
    expect(lines.length).toBeLessThan(1000 / 4);
    expect([...handled()].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, id) => id));
    expect(worker.observer.queues.values().next().value?.succeeded).toBe(1000);
  }, 90_000);

  it("a handler reporting 3 failed: exactly those are retried, then dead-lettered after maxAttempts; the rest acked once", async () => {
    const url = urlOf();
    const queue = queueName("failed");
    const { file, out } = batchApp(queue, "fail-flagged", { maxSize: 100, maxWaitMs: 50 });
    const broker = await openBroker(url);
    const failing = new Set([7, 42, 93]);
    await publish(broker, queue, Array.from({ length: 100 }, (_, id) => ({ id, fail: failing.has(id) })));
    const worker = await start(file, url, model);
    const dead = async () => listDeadLetters(broker, `${queue}.dead`, 100);
    await waitFor("3 dead letters", async () => (await dead()).length >= 3, 30_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0, 10_000);
    const seen = new Map<number, number[]>();
    for (const line of linesOf(out)) {
      line.ids.forEach((id, i) => {
        seen.set(id, [...(seen.get(id) ?? []), line.attempts[i] as number]);
      });
    }
    for (let id = 0; id < 100; id++) {
      if (failing.has(id)) expect(seen.get(id), `message ${id}`).toEqual([1, 2, 3]);
      else expect(seen.get(id), `message ${id}`).toEqual([1]);
    }
    const letters = await dead();
    expect(letters.map((letter) => JSON.parse(Buffer.from(letter.body).toString()).id).sort((a: number, b: number) => a - b)).toEqual([7, 42, 93]);
    expect(letters.every((letter) => letter.reason === "handler-failed" && /bad \d+/.test(letter.error ?? ""))).toBe(true);
    const stats = worker.observer.queues.values().next().value;
    expect(stats?.succeeded).toBe(97);
    expect(stats?.deadLettered).toBe(3);
  }, 60_000);

  it("a thrown error fails the whole batch: each message is retried, then acked", async () => {
    const url = urlOf();
    const queue = queueName("throw");
    const { file, out } = batchApp(queue, "throw-first", { maxSize: 100, maxWaitMs: 50 });
    const broker = await openBroker(url);
    await publish(broker, queue, Array.from({ length: 50 }, (_, id) => ({ id })));
    const worker = await start(file, url, model);
    const okIds = () => linesOf(out).filter((line) => line.ok).flatMap((line) => line.ids);
    await waitFor(() => `50 acked (${okIds().length})`, () => okIds().length >= 50, 30_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0, 10_000);
    const lines = linesOf(out);
    const failedFirst = lines.filter((line) => !line.ok).flatMap((line) => line.ids);
    expect([...failedFirst].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, id) => id));
    expect([...okIds()].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, id) => id));
    // No ok batch ran a first attempt: every first attempt was in a batch that threw.
    expect(lines.filter((line) => line.ok).every((line) => line.attempts.every((attempt) => attempt >= 2))).toBe(true);
    expect(await listDeadLetters(broker, `${queue}.dead`, 10)).toEqual([]);
  }, 60_000);

  it("maxWaitMs: a lone message waits for company, then is handled within maxWaitMs + slack", async () => {
    const url = urlOf();
    const queue = queueName("lone");
    const maxWaitMs = 300;
    const { file, out } = batchApp(queue, "ok", { maxSize: 100, maxWaitMs });
    const broker = await openBroker(url);
    await start(file, url, model);
    // The worker is idle: publish one message and time it to its batch.
    const sent = Date.now();
    await publish(broker, queue, [{ id: 1 }]);
    await waitFor("the lone message", () => linesOf(out).length === 1, 10_000);
    const [line] = linesOf(out);
    expect(line?.ids).toEqual([1]);
    const took = (line?.at ?? 0) - sent;
    expect(took).toBeGreaterThanOrEqual(maxWaitMs - 5);
    // Slack for a loaded 2-core machine (and SQLite's poll).
    expect(took).toBeLessThan(maxWaitMs + 1500);
  }, 30_000);
});

describe("wqueue worker --processes 2", () => {
  it("1,000 messages: each child batches its own, every message handled once, batches <= 100", async () => {
    const url = "redis://127.0.0.1:6379";
    const queue = queueName("processes");
    const { file, out } = batchApp(queue, "ok", { maxSize: 100, maxWaitMs: 50 });
    const broker = await openBroker(url);
    await publish(broker, queue, Array.from({ length: 1000 }, (_, id) => ({ id })));
    const cli = startCli(["worker", "-a", file, "--broker", url, "--concurrency", "100", "--processes", "2"]);
    clis.push(cli);
    const handled = () => linesOf(out).flatMap((line) => line.ids);
    await waitFor(() => `1,000 handled (${handled().length})`, () => handled().length >= 1000, 60_000);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
    expect(Math.max(...linesOf(out).map((line) => line.ids.length))).toBeLessThanOrEqual(100);
    expect([...handled()].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, id) => id));
  }, 90_000);
});

describe("a thread that dies mid-batch", () => {
  it("fails each message of its batch (HandlerCrashed), and each is retried on its own", async () => {
    const url = `sqlite://${path.join(dir, `${randomUUID().slice(0, 8)}.db`)}?poll=20`;
    const queue = queueName("crash");
    const out = path.join(dir, `${randomUUID().slice(0, 8)}.jsonl`);
    const file = writeApp(
      dir,
      `${randomUUID().slice(0, 8)}.ts`,
      `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 30 } });
app.listenEvents(${JSON.stringify(queue)}, (messages: { body: { id: number }; attempt: number }[]) => {
  // A first attempt takes its thread down (process.exit in a worker thread ends the thread).
  if (messages.some((m) => m.attempt === 1)) process.exit(1);
  appendFileSync(${JSON.stringify(out)}, JSON.stringify({ ids: messages.map((m) => m.body.id), attempts: messages.map((m) => m.attempt), ok: true, at: Date.now() }) + "\\n");
}, { batch: { maxSize: 100, maxWaitMs: 50 } });`,
    );
    const broker = await openBroker(url);
    await publish(broker, queue, Array.from({ length: 20 }, (_, id) => ({ id })));
    const { logger, lines } = memoryLogger();
    const worker = await startInProcess({ appFile: file, broker: url, model: { kind: "threads", threads: 2 }, concurrency: 100, logger });
    workers.push(worker);
    const handled = () => linesOf(out).flatMap((line) => line.ids);
    await waitFor(() => `20 handled (${handled().length})`, () => handled().length >= 20, 30_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0, 10_000);
    expect([...handled()].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, id) => id));
    expect(linesOf(out).every((line) => line.attempts.every((attempt) => attempt >= 2))).toBe(true);
    const crashed = lines.filter((line) => line.msg === "handler failed; will retry" && (line.err as { name?: string })?.name === "HandlerCrashed");
    expect(new Set(crashed.map((line) => line.messageId)).size).toBe(20);
  }, 60_000);
});

describe("a batch queue beside a plain one", () => {
  it("the plain queue is handled at once, with no batch window", async () => {
    const url = `sqlite://${path.join(dir, `${randomUUID().slice(0, 8)}.db`)}?poll=20`;
    const batchQueue = queueName("window");
    const plainQueue = queueName("plain");
    const out = path.join(dir, `${randomUUID().slice(0, 8)}.jsonl`);
    const file = writeApp(
      dir,
      `${randomUUID().slice(0, 8)}.ts`,
      `import { appendFileSync } from "node:fs";
export const app = new WQueue();
app.listenEvents(${JSON.stringify(batchQueue)}, () => {}, { batch: { maxSize: 100, maxWaitMs: 5000 } });
app.listenEvents(${JSON.stringify(plainQueue)}, () => { appendFileSync(${JSON.stringify(out)}, Date.now() + "\\n"); });`,
    );
    const broker = await openBroker(url);
    await start(file, url, { kind: "event-loop" }, 20);
    await publish(broker, batchQueue, [{ id: 1 }]);
    const sent = Date.now();
    await publish(broker, plainQueue, [{ id: 2 }]);
    await waitFor("the plain message", () => existsSync(out), 10_000);
    const took = Number(readFileSync(out, "utf8").trim()) - sent;
    // Far below the batch queue's 5 s window: the plain queue never waits for one.
    expect(took).toBeLessThan(1000);
  }, 30_000);
});

describe("a wqueue worker killed mid-batch (SIGKILL) loses nothing", () => {
  const cases = [
    { name: "SQLite", url: () => `sqlite://${path.join(dir, `${randomUUID().slice(0, 8)}.db`)}?visibility=1000&poll=20` },
    { name: "reliable Redis", url: () => "redis://127.0.0.1:6379?heartbeatTtl=1000" },
  ];
  it.each(cases)("$name", async ({ url: urlOf }) => {
    const url = urlOf();
    const queue = queueName("kill");
    const started = path.join(dir, `${randomUUID().slice(0, 8)}.started`);
    const done = path.join(dir, `${randomUUID().slice(0, 8)}.done`);
    const file = writeApp(
      dir,
      `${randomUUID().slice(0, 8)}.ts`,
      `import { appendFileSync } from "node:fs";
export const app = new WQueue();
app.listenEvents(${JSON.stringify(queue)}, async (messages: { body: { id: number } }[]) => {
  appendFileSync(${JSON.stringify(started)}, messages.length + "\\n");
  // The first worker hangs in its batches, so the kill lands mid-batch.
  if (process.env.BATCH_HANG === "1") await new Promise(() => {});
  appendFileSync(${JSON.stringify(done)}, messages.map((m) => m.body.id).join("\\n") + "\\n");
}, { batch: { maxSize: 50, maxWaitMs: 20 } });`,
    );
    const broker = await openBroker(url);
    await publish(broker, queue, Array.from({ length: 300 }, (_, id) => ({ id })));
    const first = startCli(["worker", "-a", file, "--broker", url, "--concurrency", "100"], { env: { BATCH_HANG: "1" } });
    clis.push(first);
    await waitFor("a batch running in the first worker", () => existsSync(started), 30_000);
    first.child.kill("SIGKILL");
    await first.exited;
    const second = startCli(["worker", "-a", file, "--broker", url, "--concurrency", "100"], { env: { BATCH_HANG: "0" } });
    clis.push(second);
    const doneIds = () => (existsSync(done) ? readFileSync(done, "utf8").split("\n").filter(Boolean).map(Number) : []);
    await waitFor(() => `all 300 handled after the kill (${new Set(doneIds()).size})`, () => new Set(doneIds()).size >= 300, 60_000);
    expect(new Set(doneIds()).size).toBe(300);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  }, 120_000);
});
