import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CoordinationStore } from "../../src/coordination/CoordinationStore.js";
import { CoordinationStores } from "../../src/coordination/open-coordination-store.js";

const dir = mkdtempSync(path.join(tmpdir(), "wqueue-coord-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kinds = {
  redis: () => "redis://127.0.0.1:6379",
  sqlite: () => `sqlite://${path.join(dir, "flow.db")}`,
};

describe.each(Object.entries(kinds))("coordination store on %s", (_kind, url) => {
  // Two stores on one URL: two worker processes, as far as the store can tell.
  async function pair(): Promise<[CoordinationStore, CoordinationStore, () => Promise<void>]> {
    const a = new CoordinationStores();
    const b = new CoordinationStores();
    return [await a.get(url()), await b.get(url()), async () => void (await Promise.all([a.close(), b.close()]))];
  }

  it("claim: one of two callers gets a lease, again only after its ttl", async () => {
    const [a, b, close] = await pair();
    try {
      const key = `test:${randomUUID()}`;
      const results = await Promise.all([a.claim(key, 300), b.claim(key, 300), a.claim(key, 300)]);
      expect(results.filter(Boolean)).toHaveLength(1);
      const deadline = Date.now() + 5000;
      while (!(await b.claim(key, 300))) {
        if (Date.now() > deadline) throw new Error("the lease never expired");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await close();
    }
  });

  it("admit: a burst of max/20 (at least 1), then one permit per perMs/max, shared by both callers; a refund gives permits back", async () => {
    const [a, b, close] = await pair();
    try {
      const queue = `q-${randomUUID()}`;
      const slow = { max: 40, perMs: 20_000 }; // interval 500 ms, burst 2
      expect((await a.admit(queue, 50, slow)).granted).toBe(2);
      const second = await b.admit(queue, 50, slow);
      expect(second.granted).toBe(0);
      expect(second.waitMs).toBeGreaterThan(0);
      expect(second.waitMs).toBeLessThanOrEqual(500);
      await a.refund(queue, 2, slow);
      expect((await b.admit(queue, 50, slow)).granted).toBe(2);
      const limit = { max: 100, perMs: 1000 }; // interval 10 ms, burst 5
      const other = `q-${randomUUID()}`;
      // Over 500 ms of asking, both together get about 50 + the burst.
      let granted = 0;
      const end = Date.now() + 500;
      while (Date.now() < end) {
        for (const store of [a, b]) {
          const got = await store.admit(other, 50, limit);
          granted += got.granted;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(granted).toBeGreaterThanOrEqual(40);
      expect(granted).toBeLessThanOrEqual(56);
    } finally {
      await close();
    }
  });

  it("pause: admit grants nothing to anyone until it ends, a shorter pause does not cut it", async () => {
    const [a, b, close] = await pair();
    try {
      const queue = `q-${randomUUID()}`;
      expect(await b.admit(queue, 3, undefined)).toEqual({ granted: 3, waitMs: 0 });
      const pausedAt = Date.now();
      await a.pause(queue, 400);
      await a.pause(queue, 50);
      const during = await b.admit(queue, 3, { max: 10, perMs: 1000 });
      expect(during.granted).toBe(0);
      expect(during.waitMs).toBeGreaterThan(250);
      expect((await b.admit(queue, 3, undefined)).granted).toBe(0);
      const deadline = Date.now() + 5000;
      while ((await b.admit(queue, 3, undefined)).granted === 0) {
        if (Date.now() > deadline) throw new Error("the pause never ended");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(390);
    } finally {
      await close();
    }
  });
});
