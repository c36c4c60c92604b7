import { describe, expect, it } from "vitest";
import { BrokerLifecycle } from "../../src/brokers/BrokerLifecycle.js";

/** A consumer that records when it was closed, into the shared `events`. */
function consumer(name: string, events: string[]) {
  let closes = 0;
  return {
    get closes() {
      return closes;
    },
    async close() {
      closes += 1;
      await Promise.resolve();
      events.push(`closed ${name}`);
    },
  };
}

describe("BrokerLifecycle", () => {
  it("closes every tracked consumer before the broker's own resources, once", async () => {
    const events: string[] = [];
    const lifecycle = new BrokerLifecycle<ReturnType<typeof consumer>>("test", "test://x");
    const a = lifecycle.track(consumer("a", events));
    const b = lifecycle.track(consumer("b", events));
    const closeOwn = async () => {
      events.push("closed own");
    };
    const first = lifecycle.close(closeOwn);
    expect(lifecycle.close(closeOwn)).toBe(first);
    await first;
    expect(events).toEqual(["closed a", "closed b", "closed own"]);
    expect([a.closes, b.closes]).toEqual([1, 1]);
  });

  it("does not close a consumer that closed itself and was forgotten", async () => {
    const events: string[] = [];
    const lifecycle = new BrokerLifecycle<ReturnType<typeof consumer>>("test", "test://x");
    const gone = lifecycle.track(consumer("gone", events));
    lifecycle.track(consumer("kept", events));
    lifecycle.forget(gone);
    await lifecycle.close(() => {});
    expect(events).toEqual(["closed kept"]);
    expect(gone.closes).toBe(0);
  });

  it("from the moment close() is called: a new consumer is closed at once, and publishing is refused", async () => {
    const events: string[] = [];
    const lifecycle = new BrokerLifecycle<ReturnType<typeof consumer>>("test", "test://x");
    expect(() => lifecycle.assertOpen()).not.toThrow();
    const closing = lifecycle.close(() => {});
    expect(lifecycle.closed).toBe(true);
    expect(() => lifecycle.assertOpen()).toThrow("test broker test://x is closed");
    const late = lifecycle.track(consumer("late", events));
    await closing;
    expect(late.closes).toBe(1);
    expect(lifecycle.consumers.size).toBe(0);
  });

  it("defaults the dead-letter queue to <queue>.dead", () => {
    expect(BrokerLifecycle.deadLetterQueue("orders", {})).toBe("orders.dead");
    expect(BrokerLifecycle.deadLetterQueue("orders", { deadLetterQueue: "graveyard" })).toBe("graveyard");
  });
});
