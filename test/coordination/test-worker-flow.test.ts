import { describe, expect, test } from "vitest";
import { RateLimited, WQueue } from "../../src/index.js";
import { createTestWorker } from "../../src/testing/index.js";

describe("createTestWorker with flow control", () => {
  test("an app with a rateLimit runs on memory brokers (no coordination store needed), at once", async () => {
    const app = new WQueue();
    app.listenEvents("slow", () => {}, { rateLimit: { max: 1, perMs: 60_000 } });
    const t = await createTestWorker(app);
    try {
      for (let n = 0; n < 5; n++) await t.publish("slow", { n });
      await t.drain();
      expect(t.handled("slow")).toHaveLength(5);
    } finally {
      await t.close();
    }
  });

  test("RateLimited on a memory broker: the message comes back with the same attempt once the pause ends", async () => {
    const app = new WQueue();
    let thrown = 0;
    const attempts: number[] = [];
    app.listenEvents("upstream", (m) => {
      attempts.push(m.attempt);
      if (thrown++ === 0) throw new RateLimited(200);
    });
    const t = await createTestWorker(app);
    try {
      const from = Date.now();
      await t.publish("upstream", { n: 1 });
      await t.drain();
      expect(attempts).toEqual([1, 1]);
      expect(Date.now() - from).toBeGreaterThanOrEqual(190);
      expect(await t.deadLetters("upstream")).toEqual([]);
    } finally {
      await t.close();
    }
  });
});
