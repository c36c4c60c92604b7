import { describe, expect, it } from "vitest";
import { CreditPool } from "../../src/dispatch/CreditPool.js";

describe("CreditPool", () => {
  const never = new AbortController().signal;

  it("grants at most the free credit and a fair share", async () => {
    const pool = new CreditPool(10, 2);
    expect(await pool.acquire(8, never)).toBe(5); // fair share of 10 between 2
    expect(await pool.acquire(8, never)).toBe(5);
    expect(pool.used).toBe(10);
  });

  it("makes a waiter wait until credit is released, first come first served", async () => {
    const pool = new CreditPool(2, 1);
    expect(await pool.acquire(2, never)).toBe(2);
    const order: string[] = [];
    const first = pool.acquire(1, never).then((n) => order.push(`first:${n}`));
    const second = pool.acquire(1, never).then((n) => order.push(`second:${n}`));
    pool.release(1);
    await first;
    expect(order).toEqual(["first:1"]);
    pool.release(1);
    await second;
    expect(order).toEqual(["first:1", "second:1"]);
    expect(pool.used).toBe(2);
  });

  it("resolves a waiter with 0 when its signal aborts, and forgets it", async () => {
    const pool = new CreditPool(1, 1);
    await pool.acquire(1, never);
    const controller = new AbortController();
    const waiting = pool.acquire(1, controller.signal);
    controller.abort();
    expect(await waiting).toBe(0);
    pool.release(1);
    expect(pool.used).toBe(0);
  });

  it("takes a sharer added while running (a queue a pattern found): a smaller fair share, and a raised limit feeds waiters", async () => {
    const pool = new CreditPool(2, 1);
    expect(await pool.acquire(2, never)).toBe(2);
    const waiting = pool.acquire(1, never);
    pool.addSharer(3);
    expect(await waiting).toBe(1);
    expect(pool.sharers).toBe(2);
    pool.release(3);
    expect(await pool.acquire(3, never)).toBe(1); // floor(3 / 2)
  });

  it("gives a take (no fair share) all that is free, and makes it wait until min(want, limit / 4) is free", async () => {
    const pool = new CreditPool(100, 50);
    expect(await pool.acquire(60, never, false)).toBe(60); // a fair share would be 2
    expect(await pool.acquire(30, never, false)).toBe(30);
    // 10 free: a take wanting 16 waits for 16, not 10 now and the rest one by one.
    let granted = 0;
    const waiting = pool.acquire(16, never, false).then((n) => (granted = n));
    pool.release(5);
    await Promise.resolve();
    expect(granted).toBe(0);
    pool.release(1);
    await waiting;
    expect(granted).toBe(16);
    // All free again: a take wanting more than limit / 4 gets all it wants.
    pool.release(pool.used);
    expect(await pool.acquire(80, never, false)).toBe(80);
  });

  it("serves waiters first come, first served: a new acquire does not pass one that waits", async () => {
    const pool = new CreditPool(8, 1);
    expect(await pool.acquire(8, never, false)).toBe(8);
    const order: string[] = [];
    const first = pool.acquire(4, never, false).then((n) => order.push(`first:${n}`));
    pool.release(1); // 1 free: the first waits for 2 (8 / 4)
    const second = pool.acquire(1, never).then((n) => order.push(`second:${n}`));
    pool.release(1);
    await first;
    pool.release(1);
    await second;
    expect(order).toEqual(["first:2", "second:1"]);
  });
});
