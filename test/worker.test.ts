import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../src/app/WQueue.js";
import type { Message } from "../src/app/types.js";
import { MemoryBroker } from "../src/brokers/memory/MemoryBroker.js";
import { RetryLater } from "../src/errors.js";
import { Worker } from "../src/worker/Worker.js";
import { memoryLogger, waitFor } from "./helpers.js";

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop(1000)));
});

function setup(options: { concurrency?: number; retry?: WQueue["options"]["retry"] } = {}) {
  const url = `memory://${randomUUID()}`;
  const app = new WQueue({ broker: url, retry: options.retry });
  const { logger, lines } = memoryLogger();
  const broker = new MemoryBroker(url);
  const start = async () => {
    const worker = new Worker(app, { logger, concurrency: options.concurrency, broker: url });
    workers.push(worker);
    await worker.start();
    return worker;
  };
  const push = (queue: string, body: string, headers?: Record<string, string>) =>
    broker.publish(queue, [{ body: Buffer.from(body), headers }]);
  return { app, broker, start, push, lines };
}

describe("Worker on the memory broker", () => {
  it("calls the handler with the decoded message and acks it", async () => {
    const { app, start, push, broker } = setup();
    const seen: Message[] = [];
    app.listenEvents("orders", (message) => {
      seen.push(message);
    });
    await start();
    await push("orders", '{"n":5}', { "x-trace": "t1" });
    await waitFor("the handler", () => seen.length === 1);
    expect(seen[0]?.body).toEqual({ n: 5 });
    expect(Buffer.from(seen[0]?.raw ?? []).toString()).toBe('{"n":5}');
    expect(seen[0]?.headers["x-trace"]).toBe("t1");
    expect(seen[0]?.queue).toBe("orders");
    expect(seen[0]?.attempt).toBe(1);
    expect(broker.waiting("orders")).toEqual([]);
  });

  it("decodes text and bytes per subscription", async () => {
    const { app, start, push } = setup();
    const bodies: unknown[] = [];
    app.listenEvents("t", (m) => void bodies.push(m.body), { decode: "text" });
    app.listenEvents("b", (m) => void bodies.push(m.body), { decode: "bytes" });
    await start();
    await push("t", "plain words");
    await waitFor("text", () => bodies.length === 1);
    await push("b", "raw");
    await waitFor("bytes", () => bodies.length === 2);
    expect(bodies[0]).toBe("plain words");
    expect(Buffer.from(bodies[1] as Uint8Array).toString()).toBe("raw");
  });

  it("dead-letters a non-JSON payload on a JSON queue at once and keeps running", async () => {
    const { app, start, push, broker, lines } = setup();
    const seen: unknown[] = [];
    app.listenEvents("json", (m) => void seen.push(m.body));
    await start();
    await push("json", "not json {");
    await push("json", '{"ok":true}');
    await waitFor("the good message", () => seen.length === 1);
    expect(seen).toEqual([{ ok: true }]);
    await waitFor("the dead letter", () => broker.waiting("json.dead").length === 1);
    const dead = broker.waiting("json.dead")[0];
    expect(Buffer.from(dead?.body ?? []).toString()).toBe("not json {");
    expect(dead?.headers["x-wqueue-dead-reason"]).toBe("undecodable");
    expect(dead?.headers["x-wqueue-dead-attempts"]).toBe("1");
    expect(lines.some((l) => String(l.msg).includes("dead-lettered (undecodable)"))).toBe(true);
  });

  it("retries a failing handler with backoff, then dead-letters it with the error", async () => {
    const { app, start, push, broker } = setup({ retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 50 } });
    const attempts: number[] = [];
    app.listenEvents("flaky", (m) => {
      attempts.push(m.attempt);
      throw new TypeError(`fails on attempt ${m.attempt}`);
    });
    await start();
    await push("flaky", "{}");
    await waitFor("the dead letter", () => broker.waiting("flaky.dead").length === 1);
    expect(attempts).toEqual([1, 2, 3]);
    const headers = broker.waiting("flaky.dead")[0]?.headers ?? {};
    expect(headers["x-wqueue-dead-reason"]).toBe("handler-failed");
    expect(headers["x-wqueue-dead-error-name"]).toBe("TypeError");
    expect(headers["x-wqueue-dead-error-message"]).toBe("fails on attempt 3");
    expect(headers["x-wqueue-dead-attempts"]).toBe("3");
  });

  it("succeeds on a retry and honours RetryLater's delay", async () => {
    const { app, start, push, broker } = setup();
    const times: number[] = [];
    app.listenEvents("later", (m) => {
      times.push(Date.now());
      if (m.attempt === 1) throw new RetryLater(200);
    });
    await start();
    await push("later", "{}");
    await waitFor("the second attempt", () => times.length === 2);
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(190);
    expect(broker.waiting("later.dead")).toEqual([]);
  });

  it("never runs more handlers at once than the concurrency limit, across queues", async () => {
    const { app, start, push } = setup({ concurrency: 4 });
    let running = 0;
    let peak = 0;
    let done = 0;
    const handler = async () => {
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running -= 1;
      done += 1;
    };
    app.listenEvents("a", handler);
    app.listenEvents("b", handler);
    await start();
    for (let i = 0; i < 30; i++) {
      await push("a", "{}");
      await push("b", "{}");
    }
    await waitFor("all 60 messages", () => done === 60);
    expect(peak).toBeLessThanOrEqual(4);
    expect(peak).toBeGreaterThan(1);
  });

  it("keeps a per-queue limit below the worker's", async () => {
    const { app, start, push } = setup({ concurrency: 8 });
    let running = 0;
    let peak = 0;
    let done = 0;
    app.listenEvents(
      "serial",
      async () => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 2));
        running -= 1;
        done += 1;
      },
      { concurrency: 1 },
    );
    await start();
    for (let i = 0; i < 20; i++) await push("serial", "{}");
    await waitFor("all messages", () => done === 20);
    expect(peak).toBe(1);
  });

  it("stop() lets an in-flight handler finish and acks it", async () => {
    const { app, start, push, broker } = setup();
    let finished = false;
    let begun = false;
    app.listenEvents("slow", async () => {
      begun = true;
      await new Promise((resolve) => setTimeout(resolve, 300));
      finished = true;
    });
    const worker = await start();
    await push("slow", "{}");
    await waitFor("the handler to start", () => begun);
    await worker.stop(5000);
    expect(finished).toBe(true);
    expect(broker.waiting("slow")).toEqual([]);
  });

  it("at the shutdown deadline, aborts the handler's signal and gives the message back", async () => {
    const { app, start, push, broker } = setup();
    let aborted = false;
    let begun = false;
    app.listenEvents("hung", (m) => {
      begun = true;
      m.signal.addEventListener("abort", () => {
        aborted = true;
      });
      return new Promise(() => {}); // never settles
    });
    const worker = await start();
    await push("hung", '{"keep":1}');
    await waitFor("the handler to start", () => begun);
    await worker.stop(100);
    expect(aborted).toBe(true);
    expect(broker.waiting("hung").map((m) => Buffer.from(m.body).toString())).toEqual(['{"keep":1}']);
  });

  it("publish() inside a handler goes through the worker's broker", async () => {
    const { app, start, push } = setup();
    const forwarded: unknown[] = [];
    app.listenEvents("in", async (m) => {
      await app.publish("out", { from: m.body });
    });
    app.listenEvents("out", (m) => void forwarded.push(m.body));
    await start();
    await push("in", '"x"');
    await waitFor("the forwarded message", () => forwarded.length === 1);
    expect(forwarded).toEqual([{ from: "x" }]);
  });

  it("refuses an app with no handlers and a --queues name it does not know", async () => {
    const { app, start } = setup();
    await expect(start()).rejects.toThrow(/registers no handlers/);
    app.listenEvents("known", () => {});
    const worker = new Worker(app, { queues: ["nope"], logger: memoryLogger().logger });
    await expect(worker.start()).rejects.toThrow(/--queues names nope, which the app does not listen on \(it has: known\)/);
  });

  it("registers class methods with the @app.listen decorator", async () => {
    const { app, start, push } = setup();
    const got: unknown[] = [];
    class Handlers {
      prefix = "seen:";
      @app.listen("decorated")
      onMessage(message: Message<string>) {
        got.push(this.prefix + message.body);
      }
    }
    new Handlers();
    await start();
    await push("decorated", '"hi"');
    await waitFor("the decorated handler", () => got.length === 1);
    expect(got).toEqual(["seen:hi"]);
  });
});
