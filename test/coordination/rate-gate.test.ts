import { describe, expect, it } from "vitest";
import type { Admission, CoordinationStore, RateLimit } from "../../src/coordination/CoordinationStore.js";
import { CoordinationStores } from "../../src/coordination/open-coordination-store.js";
import { RateGate } from "../../src/dispatch/RateGate.js";
import { memoryLogger } from "../helpers.js";

/** A coordination store that is down: every operation fails, as a Redis that does not answer would. */
class DownStore implements CoordinationStore {
  readonly url = "redis://down.invalid";
  asked = 0;
  async admit(_queue: string, _want: number, _limit: RateLimit | undefined): Promise<Admission> {
    this.asked += 1;
    throw new Error("connect ECONNREFUSED");
  }
  async refund(): Promise<void> {
    throw new Error("connect ECONNREFUSED");
  }
  async pause(): Promise<void> {
    throw new Error("connect ECONNREFUSED");
  }
  async claim(): Promise<boolean> {
    throw new Error("connect ECONNREFUSED");
  }
  async close(): Promise<void> {}
}

describe("RateGate when the coordination store is down", () => {
  it("with a rateLimit it fails closed: admits nothing, asks again with backoff, warns once", async () => {
    const store = new DownStore();
    const { logger, lines } = memoryLogger();
    const gate = new RateGate({ queue: "q", store, limit: { max: 10, perMs: 1000 }, logger });
    const signal = AbortSignal.timeout(800);
    expect(await gate.take(5, signal)).toBe(0); // 0 only once the signal aborted: nothing was admitted
    expect(store.asked).toBeGreaterThanOrEqual(3); // 100, 200, 400 ms backoff
    expect(store.asked).toBeLessThanOrEqual(5);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
  });

  it("without a rateLimit it fails open: admits at once, then skips the store for the backoff", async () => {
    const store = new DownStore();
    const { logger, lines } = memoryLogger();
    const gate = new RateGate({ queue: "q", store, limit: undefined, logger });
    const signal = new AbortController().signal;
    expect(await gate.take(5, signal)).toBe(5);
    expect(await gate.take(5, signal)).toBe(5);
    expect(store.asked).toBe(1);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
  });

  it("RateLimited's pause holds this worker at once, even when the store cannot share it", async () => {
    const store = new DownStore();
    const { logger, lines } = memoryLogger();
    const gate = new RateGate({ queue: "q", store, limit: undefined, logger });
    const pausedAt = Date.now();
    gate.pause(300);
    expect(await gate.take(1, new AbortController().signal)).toBe(1);
    expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(295);
    expect(lines.some((l) => String(l.msg).includes("could not share the pause"))).toBe(true);
  });
});

describe("RateGate on a real store", () => {
  it("renew() after a long receive refunds the stale permits and takes fresh ones", async () => {
    const stores = new CoordinationStores();
    try {
      const store = await stores.get("redis://127.0.0.1:6379");
      const queue = `gate-${Date.now()}-${Math.random()}`;
      const limit = { max: 4, perMs: 2000 }; // one permit per 500 ms
      const gate = new RateGate({ queue, store, limit, logger: memoryLogger().logger });
      const signal = new AbortController().signal;
      expect(await gate.take(1, signal)).toBe(1);
      expect(gate.stale(10)).toBe(false);
      expect(gate.stale(600)).toBe(true);
      const from = Date.now();
      await gate.renew(1, signal); // the refund makes the permit due again at once
      expect(Date.now() - from).toBeLessThan(250);
      const again = Date.now();
      expect(await gate.take(1, signal)).toBe(1); // the renewed one was charged: the next waits
      expect(Date.now() - again).toBeGreaterThanOrEqual(400);
    } finally {
      await stores.close();
    }
  });
});
