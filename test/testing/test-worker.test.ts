import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, test } from "vitest";
import { z } from "zod";
import { DeadLetterNow, WQueue } from "../../src/index.js";
import { createTestWorker, type TestWorker } from "../../src/testing/index.js";

const open: TestWorker[] = [];
async function start(...args: Parameters<typeof createTestWorker>): Promise<TestWorker> {
  const t = await createTestWorker(...args);
  open.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

describe("createTestWorker", () => {
  test("runs the app's handlers on memory and records what they handled, bodies validated", async () => {
    const app = new WQueue();
    const totals: number[] = [];
    app.listenEvents("orders", (m) => totals.push(m.body.amount), { schema: z.object({ amount: z.number() }) });
    const t = await start(app);
    for (const amount of [1, 2, 3]) await t.publish("orders", { amount });
    await t.publish("orders", { amount: "not a number" });
    await t.drain();
    expect(totals).toEqual([1, 2, 3]);
    expect(t.handled("orders").map((m) => m.body)).toEqual([{ amount: 1 }, { amount: 2 }, { amount: 3 }]);
    const dead = await t.deadLetters("orders");
    expect(dead.map((d) => [d.body, d.reason])).toEqual([[{ amount: "not a number" }, "invalid"]]);
  });

  test("runs a pattern's handler on each matching queue, ones published to after start included", async () => {
    const app = new WQueue();
    app.listenEvents("tenant.*", (m: { body: { bad?: boolean } }) => {
      if (m.body.bad) throw new DeadLetterNow("bad tenant message");
    });
    const t = await start(app);
    await t.publish("tenant.acme", { n: 1 });
    await t.publish("tenant.globex", { n: 2 });
    await t.publish("tenant.globex", { bad: true });
    await t.publish("other.acme", { n: 3 });
    await t.drain();
    expect(t.handled("tenant.acme").map((m) => m.body)).toEqual([{ n: 1 }]);
    expect(t.handled("tenant.globex").map((m) => m.body)).toEqual([{ n: 2 }]);
    expect(t.handled("other.acme")).toEqual([]);
    expect((await t.deadLetters("tenant.globex")).map((d) => d.body)).toEqual([{ bad: true }]);
  });

  test("retries without waiting out the backoff, and dead-letters after the last attempt", async () => {
    const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 60_000 } });
    app.listenEvents("flaky", (m) => {
      if (m.attempt < 3) throw new Error(`attempt ${m.attempt} fails`);
    });
    app.listenEvents("broken", () => {
      throw new Error("always fails");
    }, { retry: { baseDelayMs: 60_000 } });
    const t = await start(app);
    await t.publish("flaky", { v: "x" });
    await t.publish("broken", { n: 1 });
    await t.drain();
    expect(t.handled("flaky").map((m) => m.attempt)).toEqual([3]);
    expect(t.handled("broken")).toEqual([]);
    const [letter, ...more] = await t.deadLetters("broken");
    expect(more).toEqual([]);
    expect(letter).toMatchObject({ body: { n: 1 }, attempts: 3, error: "Error: always fails" });
  });

  test("drain waits for delayed retries when delays are kept", async () => {
    const app = new WQueue();
    app.listenEvents("later", (m) => {
      if (m.attempt === 1) throw new Error("once");
    }, { retry: { baseDelayMs: 200, maxDelayMs: 200 } });
    const t = await start(app, { skipRetryDelays: false });
    await t.publish("later", 1);
    await t.drain();
    expect(t.handled("later").map((m) => m.attempt)).toEqual([2]);
  });

  test("drain waits for in-flight handlers and for what handlers publish, on named brokers too", async () => {
    const app = new WQueue({ brokers: { audit: "redis://127.0.0.1:1" } });
    app.listenEvents("first", async (m) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await app.publish("second", { from: m.body }, { broker: "audit" });
    });
    app.listenEvents("second", async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }, { broker: "audit" });
    const t = await start(app);
    await t.publish("first", { v: "a" });
    await t.drain();
    expect(t.handled("first")).toHaveLength(1);
    expect(t.handled("second").map((m) => m.body)).toEqual([{ from: { v: "a" } }]);
  });

  test("drain rejects with what is left when a handler never finishes; DeadLetterNow is a dead letter", async () => {
    const app = new WQueue();
    app.listenEvents("stuck", (m) => new Promise((resolve) => m.signal.addEventListener("abort", resolve)));
    app.listenEvents("refused", () => {
      throw new DeadLetterNow("no");
    });
    const t = await start(app, { closeGraceMs: 10 });
    await t.publish("refused", 1);
    await t.publish("stuck", 1);
    await expect(t.drain({ timeoutMs: 300 })).rejects.toThrow(/not idle after 300 ms \(0 queued, 1 in flight/);
    expect((await t.deadLetters("refused")).map((d) => d.body)).toEqual([1]);
  });

  test("runs on a given broker URL (Redis)", async () => {
    const queue = `test-worker-${randomUUID()}`;
    const app = new WQueue();
    app.listenEvents(queue, () => undefined);
    const t = await start(app, { broker: "redis://127.0.0.1:6379" });
    for (let i = 0; i < 5; i++) await t.publish(queue, { i });
    await t.drain();
    expect(t.handled(queue).map((m) => m.body)).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
  });

  test("works under node:test, imported from the built package (wqueue/testing/worker)", async () => {
    const file = fileURLToPath(new URL("./node-test/test-worker.node-test.mjs", import.meta.url));
    const result = await promisify(execFile)(process.execPath, ["--test", "--test-reporter=tap", file]).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result.stdout).toMatch(/# pass 2\b/);
    expect(result.stdout).toMatch(/# fail 0\b/);
    expect(`${result.stdout}${result.stderr}`).not.toContain("ready:"); // quiet: no worker log in the test output
  }, 60_000);
});
