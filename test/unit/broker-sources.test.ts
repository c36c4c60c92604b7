import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import { BrokerSet } from "../../src/brokers/BrokerSet.js";
import type { BrokerLog } from "../../src/brokers/contract.js";
import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import { createBroker, registerBroker, supportedSchemes } from "../../src/brokers/registry.js";
import { Worker } from "../../src/worker/Worker.js";
import { memoryLogger, waitFor } from "../helpers.js";

/** A memory broker that counts its close() calls. */
class CountedBroker extends MemoryBroker {
  closes = 0;
  override close(): Promise<void> {
    this.closes += 1;
    return super.close();
  }
}

const closing: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((thing) => thing.close()));
});

describe("registerBroker", () => {
  it("makes a scheme open with the given adapter, which gets the URL and a log", async () => {
    const scheme = `test-${randomUUID().slice(0, 8)}`;
    const seen: string[] = [];
    registerBroker(scheme, (url, log) => {
      seen.push(url);
      log("info", "opened");
      return new MemoryBroker(`memory://${scheme}`);
    });
    expect(supportedSchemes()).toContain(scheme);
    const logged: string[] = [];
    const broker = await createBroker(`${scheme}://host/x`, (_level, message) => logged.push(message));
    expect(broker.kind).toBe("memory");
    expect(seen).toEqual([`${scheme}://host/x`]);
    expect(logged).toEqual(["opened"]);
  });

  it("refuses what is not a scheme or not a function, in one line", () => {
    expect(() => registerBroker("no spaces://", () => new MemoryBroker("memory://x"))).toThrow(/is not a URL scheme/);
    expect(() => registerBroker("ok", "nope" as never)).toThrow(/open must be a function/);
  });
});

describe("new WQueue({ broker, brokers }) with Broker objects and factories", () => {
  it("runs handlers on a Broker object and on a factory's broker, and closes both with the worker", async () => {
    const id = randomUUID().slice(0, 8);
    const object = new CountedBroker(`memory://object-${id}`);
    let made = 0;
    let factoryLog: BrokerLog | undefined;
    let fromFactory: CountedBroker | undefined;
    const app = new WQueue({
      broker: object,
      brokers: {
        other: (log) => {
          made += 1;
          factoryLog = log;
          fromFactory = new CountedBroker(`memory://factory-${id}`);
          return fromFactory;
        },
      },
    });
    const got: string[] = [];
    app.listenEvents("a", (m: { body: { n: string } }) => void got.push(`a:${m.body.n}`));
    app.listenEvents("b", (m: { body: { n: string } }) => void got.push(`b:${m.body.n}`), { broker: "other" });
    const { logger, lines } = memoryLogger();
    const worker = new Worker(app, { logger });
    closing.push({ close: () => worker.stop(1000) });
    await worker.start();
    await app.publish("a", { n: "one" });
    await app.publish("b", { n: "two" }, { broker: "other" });
    await waitFor(() => `both handled: ${JSON.stringify(lines.slice(-5))}`, () => got.length === 2);
    expect(got.sort()).toEqual(["a:one", "b:two"]);
    expect(made).toBe(1);
    // The factory's log lines name the broker by its (redacted) URL once it exists.
    factoryLog?.("warn", "reconnecting");
    expect(lines.some((line) => line.msg === `broker memory://factory-${id}: reconnecting`)).toBe(true);
    await worker.stop(1000);
    closing.pop();
    expect(object.closes).toBeGreaterThan(0);
    expect(fromFactory?.closes).toBeGreaterThan(0);
  });

  it("a factory that fails is asked again on the next use", async () => {
    let calls = 0;
    const set = new BrokerSet(async () => {
      calls += 1;
      if (calls === 1) throw new Error("not yet");
      return new MemoryBroker(`memory://retry-${randomUUID()}`);
    });
    closing.push(set);
    await expect(set.get()).rejects.toThrow("not yet");
    expect((await set.get()).kind).toBe("memory");
    expect(calls).toBe(2);
  });

  it("refuses anything else at construction, naming the option", () => {
    expect(() => new WQueue({ brokers: { x: 42 as never } })).toThrow(/brokers: \{ x \} \}\) must be a broker URL, a Broker/);
    expect(() => new WQueue({ broker: { connect() {} } as never })).toThrow(/new WQueue\(\{ broker \}\) must be/);
    const set = new BrokerSet((() => ({ not: "a broker" })) as never);
    closing.push(set);
    return expect(set.get()).rejects.toThrow(/the factory returned no Broker/);
  });
});
