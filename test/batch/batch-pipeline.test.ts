import { randomUUID } from "node:crypto";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import type { Message, StandardSchema } from "../../src/app/types.js";
import type { Broker } from "../../src/brokers/contract.js";
import { createBroker } from "../../src/brokers/registry.js";
import { listDeadLetters } from "../../src/dead-letters/dead-letters.js";
import { DeadLetterNow } from "../../src/errors.js";
import { createTestWorker } from "../../src/testing/test-worker.js";
import { Worker } from "../../src/worker/Worker.js";
import { tempDir } from "../cli/run-cli.js";
import { memoryLogger, waitFor } from "../helpers.js";

/**
 * What runs around a batch handler, on a real SQLite file on the event loop: middleware per
 * message, schema per message, a malformed result, the options' checks, batches capped by
 * concurrency, and createTestWorker.
 */

const dir = tempDir();
const workers: Worker[] = [];
const brokers: Broker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(1000)));
});
afterAll(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

const sqliteUrl = () => `sqlite://${path.join(dir, `${randomUUID().slice(0, 8)}.db`)}?poll=20`;

async function setup(app: WQueue, url: string, concurrency = 100) {
  const broker = await createBroker(url);
  await broker.connect();
  brokers.push(broker);
  const { logger, lines } = memoryLogger();
  const worker = new Worker(app, { broker: url, logger, concurrency });
  workers.push(worker);
  const publish = (queue: string, bodies: unknown[]) =>
    broker.publish(
      queue,
      bodies.map((body) => ({ body: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)) })),
    );
  const dead = async (queue: string) =>
    (await listDeadLetters(broker, `${queue}.dead`, 100)).map((letter) => ({ ...letter, text: Buffer.from(letter.body).toString() }));
  return { broker, worker, lines, publish, dead };
}

describe("middleware runs per message around the one batch call", () => {
  it("each message's chain reaches next(); the handler runs once; skips, early throws and error mapping stay per message", async () => {
    const app = new WQueue({ retry: { maxAttempts: 1 } });
    const events: string[] = [];
    app.use(async (message, next) => {
      const { id } = message.body as { id: number };
      events.push(`in ${id}`);
      if (id === 0) return; // skipped: acked without reaching the handler
      if (id === 1) throw new Error("refused before the handler");
      try {
        await next();
      } catch (error) {
        if (id === 2) throw new DeadLetterNow(`mapped: ${(error as Error).message}`);
        throw error;
      }
      events.push(`out ${id}`);
    });
    const calls: number[][] = [];
    app.listenEvents(
      "mw",
      async (messages: Message<{ id: number }>[]) => {
        calls.push(messages.map((m) => m.body.id));
        return { failed: messages.filter((m) => m.body.id === 2 || m.body.id === 3).map((m) => ({ message: m, error: new Error(`bad ${m.body.id}`) })) };
      },
      { batch: { maxSize: 10, maxWaitMs: 200 } },
    );
    const { worker, publish, dead } = await setup(app, sqliteUrl());
    await publish("mw", [0, 1, 2, 3, 4, 5].map((id) => ({ id })));
    await worker.start();
    await waitFor("3 dead letters", async () => (await dead("mw")).length === 3, 10_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0);
    expect(calls).toEqual([[2, 3, 4, 5]]);
    const letters = Object.fromEntries((await dead("mw")).map((letter) => [JSON.parse(letter.text).id, `${letter.reason}: ${letter.error}`]));
    expect(letters[1]).toMatch(/handler-failed: .*refused before the handler/);
    expect(letters[2]).toMatch(/dead-letter-requested: .*mapped: bad 2/);
    expect(letters[3]).toMatch(/handler-failed: .*bad 3/);
    expect(events.filter((e) => e.startsWith("out")).sort()).toEqual(["out 4", "out 5"]);
    const stats = worker.observer.queues.values().next().value;
    expect(stats?.succeeded).toBe(3); // 0 (skipped), 4, 5
  });
});

describe("per message before the batch", () => {
  it("a message failing its schema, or undecodable, is dead-lettered alone and never reaches the batch", async () => {
    const app = new WQueue();
    const schema: StandardSchema<{ id: number }> = {
      "~standard": {
        version: 1,
        validate: (value) =>
          typeof (value as { id?: unknown }).id === "number" ? { value: value as { id: number } } : { issues: [{ message: "id must be a number", path: ["id"] }] },
      },
    };
    const seen: number[][] = [];
    app.listenEvents("schema", (messages) => void seen.push(messages.map((m) => m.body.id)), { schema, batch: { maxSize: 10, maxWaitMs: 200 } });
    const { worker, publish, dead } = await setup(app, sqliteUrl());
    await publish("schema", [{ id: 1 }, { id: "two" }, "not json {", { id: 3 }]);
    await worker.start();
    await waitFor("2 dead letters", async () => (await dead("schema")).length === 2, 10_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0);
    expect(seen.flat().sort()).toEqual([1, 3]);
    const reasons = (await dead("schema")).map((letter) => letter.reason).sort();
    expect(reasons).toEqual(["invalid", "undecodable"]);
  });

  it("a result naming a message not in the batch fails the batch with InvalidBatchResult (nothing lost)", async () => {
    const app = new WQueue();
    app.listenEvents("bad-result", () => ({ failed: [{ message: { id: "elsewhere" } as never, error: new Error("x") }] }), {
      retry: false,
      batch: { maxSize: 10, maxWaitMs: 100 },
    });
    const { worker, publish, dead } = await setup(app, sqliteUrl());
    await publish("bad-result", [{ id: 1 }, { id: 2 }]);
    await worker.start();
    await waitFor("2 dead letters", async () => (await dead("bad-result")).length === 2, 10_000);
    expect((await dead("bad-result")).every((letter) => /InvalidBatchResult/.test(letter.error ?? ""))).toBe(true);
  });
});

describe("policies per message in a batch", () => {
  it('ackPolicy "manual": each message is settled as the handler decided for it', async () => {
    const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
    const seen: string[] = [];
    app.listenEvents(
      "manual",
      (messages: Message<{ id: number }>[]) => {
        for (const m of messages) {
          seen.push(`${m.body.id}@${m.attempt}`);
          if (m.attempt === 1 && m.body.id % 2 === 1) m.nack({ delayMs: 10 });
          else m.ack();
        }
      },
      { ackPolicy: "manual", batch: { maxSize: 10, maxWaitMs: 100 } },
    );
    const { worker, publish } = await setup(app, sqliteUrl());
    await publish("manual", [0, 1, 2, 3].map((id) => ({ id })));
    await worker.start();
    await waitFor(() => `6 runs (${seen.join(" ")})`, () => seen.length >= 6, 10_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0);
    expect(seen.sort()).toEqual(["0@1", "1@1", "1@2", "2@1", "3@1", "3@2"]);
  });

  it("timeoutMs: message.signal aborts, the batch's messages are retried (HandlerTimeout), then acked", async () => {
    const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
    const runs: { attempts: number[]; aborted: boolean }[] = [];
    app.listenEvents(
      "timeout",
      async (messages: Message<{ id: number }>[]) => {
        const run = { attempts: messages.map((m) => m.attempt), aborted: false };
        runs.push(run);
        if (messages.some((m) => m.attempt === 1)) {
          await new Promise<void>((resolve) => (messages[0] as Message).signal.addEventListener("abort", () => resolve(), { once: true }));
          run.aborted = true;
        }
      },
      { timeoutMs: 300, batch: { maxSize: 10, maxWaitMs: 50 } },
    );
    const { worker, publish, lines } = await setup(app, sqliteUrl());
    await publish("timeout", [1, 2, 3].map((id) => ({ id })));
    await worker.start();
    await waitFor(() => `the retried batch (${JSON.stringify(runs)})`, () => runs.flatMap((run) => run.attempts).filter((a) => a === 2).length === 3, 10_000);
    await waitFor("nothing in flight", () => worker.inFlight === 0);
    expect(runs[0]).toEqual({ attempts: [1, 1, 1], aborted: true });
    expect(lines.filter((line) => line.msg === "handler failed; will retry" && (line.err as { name?: string })?.name === "HandlerTimeout")).toHaveLength(3);
    expect(worker.observer.queues.values().next().value?.succeeded).toBe(3);
  });
});

describe("graceful stop", () => {
  it("runs a batch still waiting for company at once, instead of waiting out maxWaitMs", async () => {
    const app = new WQueue();
    const handled: number[] = [];
    app.listenEvents("stop", (messages: Message<{ id: number }>[]) => void handled.push(...messages.map((m) => m.body.id)), {
      batch: { maxSize: 100, maxWaitMs: 60_000 },
    });
    const { worker, publish, broker } = await setup(app, sqliteUrl());
    await worker.start();
    await publish("stop", [{ id: 1 }]);
    await waitFor("the message waiting in its batch", () => worker.inFlight === 1, 5000);
    const started = Date.now();
    await worker.stop(30_000);
    // Far below both the window (60 s) and the grace period (30 s).
    expect(Date.now() - started).toBeLessThan(5000);
    expect(handled).toEqual([1]);
    expect(await broker.backlog?.("stop")).toBe(0);
  });
});

describe("batch options", () => {
  it("are checked at listenEvents with one ConfigError each", () => {
    const app = new WQueue();
    const handler = () => {};
    const bad: [unknown, RegExp][] = [
      [{ maxSize: 0 }, /maxSize must be a whole number from 1 to 10000, got 0/],
      [{ maxSize: 10_001 }, /maxSize/],
      [{ maxSize: 2.5 }, /maxSize/],
      [{ maxWaitMs: -1 }, /maxWaitMs must be a whole number of milliseconds from 0 to 60000/],
      [{ maxWaitMs: 60_001 }, /maxWaitMs/],
      [{ maxsize: 10 }, /unknown option\(s\) maxsize/],
      [5, /batch must be an object/],
      [null, /batch must be an object/],
    ];
    for (const [batch, message] of bad) {
      expect(() => app.listenEvents(`q${String(Math.random())}`, handler, { batch } as never)).toThrow(message);
      expect(() => app.listenEvents(`q${String(Math.random())}`, handler, { batch } as never)).toThrow(expect.objectContaining({ name: "ConfigError" }));
    }
    expect(() => app.queue("h", { batch: {} } as never).listen(handler)).toThrow(/batch handlers register with app.listenEvents/);
    expect(app.subscriptions).toEqual([]);
  });

  it("concurrency below maxSize: a warning at start, and batches go out full at the concurrency instead of waiting out maxWaitMs", async () => {
    const app = new WQueue();
    const sizes: number[] = [];
    app.listenEvents("capped", (messages) => void sizes.push(messages.length), { batch: { maxSize: 100, maxWaitMs: 60_000 } });
    const { worker, publish, lines } = await setup(app, sqliteUrl(), 10);
    await publish("capped", Array.from({ length: 100 }, (_, id) => ({ id })));
    await worker.start();
    expect(lines.some((line) => /batch\.maxSize is 100 but the queue may hold only 10 messages/.test(String(line.msg)))).toBe(true);
    // Far below the 60 s window: each batch went once it held the 10 the concurrency allows.
    await waitFor(() => `100 handled (${sizes.join(",")})`, () => sizes.reduce((a, b) => a + b, 0) === 100, 15_000);
    expect(Math.max(...sizes)).toBe(10);
  });
});

describe("createTestWorker", () => {
  it("runs batch handlers: handled() lists what was not reported failed, deadLetters() the rest", async () => {
    const app = new WQueue({ retry: { maxAttempts: 2 } });
    app.listenEvents(
      "tw",
      (messages: Message<{ id: number }>[]) => ({ failed: messages.filter((m) => m.body.id % 2 === 1).map((m) => ({ message: m, error: new Error("odd") })) }),
      { batch: { maxSize: 10, maxWaitMs: 20 } },
    );
    const t = await createTestWorker(app);
    try {
      for (let id = 0; id < 6; id++) await t.publish("tw", { id });
      await t.drain();
      expect(t.handled<{ id: number }>("tw").map((m) => m.body.id).sort()).toEqual([0, 2, 4]);
      const letters = await t.deadLetters("tw");
      expect(letters.map((letter) => (letter.body as { id: number }).id).sort()).toEqual([1, 3, 5]);
      expect(letters.every((letter) => letter.attempts === 2)).toBe(true);
    } finally {
      await t.close();
    }
  });
});
