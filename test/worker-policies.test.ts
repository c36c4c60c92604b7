import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { WQueue } from "../src/app/WQueue.js";
import type { ListenOptions, Message } from "../src/app/types.js";
import type { Broker } from "../src/brokers/contract.js";
import { MemoryBroker } from "../src/brokers/memory/MemoryBroker.js";
import { listDeadLetters, replayDeadLetters } from "../src/dead-letters/dead-letters.js";
import { Worker } from "../src/worker/Worker.js";
import { memoryLogger, waitFor } from "./helpers.js";

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop(500)));
});

async function run(queue: string, handler: (m: Message<never>) => unknown, options: ListenOptions = {}, concurrency = 10) {
  const url = `memory://${randomUUID()}`;
  const app = new WQueue({ broker: url, retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
  app.listenEvents(queue, handler, options);
  const worker = new Worker(app, { logger: memoryLogger().logger, concurrency });
  workers.push(worker);
  await worker.start();
  const broker = new MemoryBroker(url);
  return {
    broker,
    push: (body: string, extra: { key?: string; attempt?: number } = {}) =>
      broker.publish(queue, [{ body: Buffer.from(body), ...extra }]),
    deadHeaders: () => broker.waiting(`${queue}.dead`).map((m) => m.headers),
  };
}

describe("ack policies", () => {
  it('"before" acks on receipt: a failing handler is not retried', async () => {
    let calls = 0;
    const { push, broker, deadHeaders } = await run(
      "q",
      () => {
        calls += 1;
        throw new Error("lost on purpose");
      },
      { ackPolicy: "before" },
    );
    await push("{}");
    await waitFor("the handler", () => calls === 1);
    await push('"marker"');
    await waitFor("the marker", () => calls === 2);
    expect(broker.waiting("q")).toEqual([]);
    expect(deadHeaders()).toEqual([]);
  });

  it('"manual" applies the handler\'s ack() or nack(), and gives back a message it did not decide on', async () => {
    const seen: string[] = [];
    const { push, broker } = await run(
      "m",
      (message) => {
        const body = message.body as string;
        seen.push(`${body}:${message.attempt}`);
        if (body === "ack") message.ack();
        if (body === "nack" && message.attempt === 1) message.nack({ delayMs: 10 });
        if (body === "nack" && message.attempt === 2) message.ack();
        if (body === "silent" && message.attempt === 2) message.ack();
      },
      { ackPolicy: "manual", decode: "text" },
    );
    await push("ack");
    await push("nack");
    await push("silent");
    await waitFor("all decisions", () => seen.length === 5);
    expect(seen.sort()).toEqual(["ack:1", "nack:1", "nack:2", "silent:1", "silent:2"]);
    expect(broker.waiting("m")).toEqual([]);
  });

  it("message.ack() without the manual policy fails the handler with a clear error", async () => {
    const { push, deadHeaders } = await run("x", (message) => message.ack(), { retry: false });
    await push("{}");
    await waitFor("the dead letter", () => deadHeaders().length === 1);
    expect(deadHeaders()[0]?.["x-wqueue-dead-error-message"]).toMatch(/needs ackPolicy: "manual"/);
  });
});

describe("timeouts, poison messages and schemas", () => {
  it("a handler past timeoutMs sees its signal abort, the message is retried and its slot freed", async () => {
    const attempts: number[] = [];
    let aborted = 0;
    const { push, broker } = await run(
      "slow",
      async (message) => {
        attempts.push(message.attempt);
        if (message.attempt === 1) {
          message.signal.addEventListener("abort", () => {
            aborted += 1;
          });
          await new Promise((resolve) => setTimeout(resolve, 5000));
        }
      },
      { timeoutMs: 100 },
      1,
    );
    await push("{}");
    // concurrency 1: the retry can only run if the timed-out handler's slot was freed.
    await waitFor("the retry", () => attempts.length === 2);
    expect(attempts).toEqual([1, 2]);
    expect(aborted).toBe(1);
    expect(broker.waiting("slow")).toEqual([]);
  });

  it("dead-letters a message delivered more often than the retry limit (its worker kept dying)", async () => {
    let calls = 0;
    const { push, deadHeaders } = await run("p", () => {
      calls += 1;
    });
    await push("{}", { attempt: 4 }); // maxAttempts is 3: deliveries 1..3 never finished
    await waitFor("the dead letter", () => deadHeaders().length === 1);
    expect(calls).toBe(0);
    expect(deadHeaders()[0]?.["x-wqueue-dead-reason"]).toBe("poison");
  });

  it("dead-letters a message that fails its Standard Schema (zod) with the issues, and passes parsed values", async () => {
    const bodies: unknown[] = [];
    const { push, deadHeaders } = await run("s", (m) => void bodies.push(m.body), {
      schema: z.object({ id: z.string(), qty: z.coerce.number().int() }),
    });
    await push('{"id":"a","qty":"3"}');
    await push('{"id":7}');
    await waitFor("the valid message and the dead letter", () => bodies.length === 1 && deadHeaders().length === 1);
    expect(bodies).toEqual([{ id: "a", qty: 3 }]);
    expect(deadHeaders()[0]?.["x-wqueue-dead-reason"]).toBe("invalid");
    expect(deadHeaders()[0]?.["x-wqueue-dead-error-message"]).toMatch(/^id: .*; qty: /);
  });
});

describe("ordering", () => {
  it('"key" runs messages of one key in order, one at a time, and different keys in parallel', async () => {
    const log: string[] = [];
    const running = new Map<string, number>();
    let overlapSameKey = false;
    let peakKeys = 0;
    const { push } = await run(
      "o",
      async (message) => {
        const key = message.key as string;
        running.set(key, (running.get(key) ?? 0) + 1);
        if ((running.get(key) ?? 0) > 1) overlapSameKey = true;
        peakKeys = Math.max(peakKeys, [...running.values()].filter((n) => n > 0).length);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 4));
        log.push(`${key}:${message.body}`);
        running.set(key, (running.get(key) ?? 1) - 1);
      },
      { ordering: "key" },
      8,
    );
    for (let i = 0; i < 40; i++) for (const key of ["a", "b", "c", "d"]) await push(String(i), { key });
    await waitFor("all 160 messages", () => log.length === 160);
    for (const key of ["a", "b", "c", "d"]) {
      const order = log.filter((entry) => entry.startsWith(`${key}:`)).map((entry) => Number(entry.split(":")[1]));
      expect(order).toEqual([...Array(40).keys()]);
    }
    expect(overlapSameKey).toBe(false);
    expect(peakKeys).toBeGreaterThan(1);
  });
});

describe("retries and bad input", () => {
  it("a handler failing twice then succeeding is called 3 times, with growing gaps", async () => {
    const times: number[] = [];
    const url = `memory://${randomUUID()}`;
    const app = new WQueue({ broker: url, retry: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 10_000 } });
    app.listenEvents("flaky", (m) => {
      times.push(Date.now());
      if (m.attempt < 3) throw new Error(`failure ${m.attempt}`);
    });
    const { logger, lines } = memoryLogger();
    const worker = new Worker(app, { logger });
    workers.push(worker);
    await worker.start();
    await new MemoryBroker(url).publish("flaky", [{ body: Buffer.from("{}") }]);
    await waitFor("the third attempt", () => times.length === 3);
    const [first, second, third] = times as [number, number, number];
    // The delays asked for grow: full jitter keeps each in [cap/2, cap], 50..100 ms then 100..200 ms
    // (disjoint ranges, so the second is never shorter). Timers may fire late on a loaded machine,
    // never early: each gap is at least its delay (1 ms of timer rounding allowed).
    const delays = lines.filter((l) => l.msg === "handler failed; will retry").map((l) => l.retryInMs as number);
    expect(delays).toHaveLength(2);
    const [firstDelay, secondDelay] = delays as [number, number];
    expect(firstDelay).toBeGreaterThanOrEqual(50);
    expect(firstDelay).toBeLessThanOrEqual(100);
    expect(secondDelay).toBeGreaterThanOrEqual(100);
    expect(secondDelay).toBeLessThanOrEqual(200);
    expect(second - first).toBeGreaterThanOrEqual(firstDelay - 1);
    expect(third - second).toBeGreaterThanOrEqual(secondDelay - 1);
  });

  it("a thrown non-Error and a __proto__ key are handled with clear reasons and pollute nothing", async () => {
    const seen: unknown[] = [];
    const { push, deadHeaders } = await run(
      "odd",
      (message) => {
        const body = message.body as Record<string, unknown>;
        if (body.throwString) throw "plain string thrown";
        seen.push(body);
      },
      { retry: false },
    );
    await push('{"throwString":true}');
    await push('{"__proto__":{"polluted":"yes"},"ok":1}');
    await waitFor("the dead letter and the good message", () => deadHeaders().length === 1 && seen.length === 1);
    expect(deadHeaders()[0]?.["x-wqueue-dead-error-name"]).toBe("NonError");
    expect(deadHeaders()[0]?.["x-wqueue-dead-error-message"]).toBe("plain string thrown");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(seen[0] as object, "__proto__")).toBe(true);
  });
});

describe("dead letters on another broker (deadLetterBroker)", () => {
  it("publishes them there with the usual headers, acks them on their own broker, and replays them back to it", async () => {
    const url = `memory://${randomUUID()}`;
    const dir = mkdtempSync(join(tmpdir(), "wqueue-dlb-"));
    const app = new WQueue({ broker: url, brokers: { dead: `sqlite://${join(dir, "dead.db")}` }, retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });
    let fail = true;
    const handled: string[] = [];
    app.listenEvents(
      "orders",
      (m: Message<{ id: number }>) => {
        if (fail) throw new TypeError(`bad order ${m.body.id}`);
        handled.push(JSON.stringify(m.body));
      },
      { deadLetterBroker: "dead" },
    );
    const worker = new Worker(app, { logger: memoryLogger().logger });
    workers.push(worker);
    await worker.start();
    const own = new MemoryBroker(url);
    await own.publish("orders", [{ body: Buffer.from('{"id":7}'), headers: { "x-origin": "shop" } }]);

    const target = await worker.deadLettersOf("orders");
    expect(target?.broker.url).toContain("dead.db");
    let letters: Awaited<ReturnType<typeof listDeadLetters>> = [];
    await waitFor("the dead letter on the SQLite broker", async () => {
      letters = await listDeadLetters(target?.broker as Broker, "orders.dead", 10);
      return letters.length === 1;
    });
    expect(letters[0]).toMatchObject({ queue: "orders", reason: "handler-failed", error: "TypeError: bad order 7", attempts: 2 });
    expect(letters[0]?.headers["x-origin"]).toBe("shop");
    expect(own.waiting("orders")).toEqual([]); // acked on its own broker
    expect(own.waiting("orders.dead")).toEqual([]); // and not dead-lettered there

    fail = false;
    const replayed = await replayDeadLetters(target?.broker as Broker, target?.deadQueue as string, { limit: 10, replayTo: target?.replayBroker });
    expect(replayed).toBe(1);
    await waitFor("the replayed order handled", () => handled.length === 1);
    expect(handled).toEqual(['{"id":7}']);
    expect(await listDeadLetters(target?.broker as Broker, "orders.dead", 10)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});
