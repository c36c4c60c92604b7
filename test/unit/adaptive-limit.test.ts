import { describe, expect, it } from "vitest";
import { AdaptiveLimit } from "../../src/dispatch/AdaptiveLimit.js";

/**
 * The limiter alone, on synthetic latencies: a saturated queue (a backlog) keeps `limit` messages
 * in flight, and each message's latency is what a resource gives at that load.
 */
const BASE_MS = 10;
/** Flat up to `knee` in flight, then steeply worse (cubic), as a database past its pool. */
const kneeAt = (knee: number) => (inFlight: number) => (inFlight <= knee ? BASE_MS : BASE_MS * (inFlight / knee) ** 3);

/** Runs `rounds` rounds of `limit` messages each; returns the limits seen, one per round. */
function saturate(limiter: AdaptiveLimit, latency: (inFlight: number) => number, rounds: number, failing = () => false): number[] {
  const seen: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const inFlight = limiter.limit;
    for (let i = 0; i < inFlight; i++) limiter.sample(latency(inFlight), inFlight, failing());
    seen.push(limiter.limit);
  }
  return seen;
}

describe("AdaptiveLimit", () => {
  it("grows while latency stays flat, up to its max", () => {
    const limiter = new AdaptiveLimit({ min: 1, max: 200, initial: 10 });
    const seen = saturate(limiter, () => BASE_MS, 300);
    expect(seen.at(-1)).toBe(200);
    expect(seen.slice(1).every((limit, i) => limit >= (seen[i] as number))).toBe(true);
  });

  it("settles near the knee when latency rises past 20 in flight, far below a high max", () => {
    const limiter = new AdaptiveLimit({ min: 1, max: 200, initial: 10 });
    const seen = saturate(limiter, kneeAt(20), 400);
    const settled = seen.slice(-100);
    expect(Math.min(...settled)).toBeGreaterThanOrEqual(15);
    expect(Math.max(...settled)).toBeLessThanOrEqual(25);
  });

  it("follows a knee that moves: down when the resource degrades, up again when it recovers", () => {
    const limiter = new AdaptiveLimit({ min: 1, max: 200, initial: 10 });
    saturate(limiter, kneeAt(40), 400);
    const before = limiter.limit;
    const degraded = saturate(limiter, (n) => kneeAt(10)(n), 200);
    expect(before).toBeGreaterThanOrEqual(32);
    expect(Math.max(...degraded.slice(-50))).toBeLessThanOrEqual(13);
    saturate(limiter, kneeAt(40), 400);
    expect(limiter.limit).toBeGreaterThanOrEqual(32);
  });

  it("cuts the limit when handlers fail, down to its min", () => {
    const limiter = new AdaptiveLimit({ min: 3, max: 200, initial: 50 });
    const seen = saturate(limiter, () => BASE_MS, 60, () => true);
    expect(seen[5]).toBeLessThan(50);
    expect(seen.at(-1)).toBe(3);
  });

  it("a few failures (under a tenth) do not cut it", () => {
    const limiter = new AdaptiveLimit({ min: 1, max: 100, initial: 20 });
    let n = 0;
    const seen = saturate(limiter, () => BASE_MS, 200, () => ++n % 20 === 0);
    expect(seen.at(-1)).toBe(100);
  });

  it("does not grow when the queue does not use its limit (no backlog)", () => {
    const limiter = new AdaptiveLimit({ min: 1, max: 100, initial: 10 });
    for (let i = 0; i < 1000; i++) limiter.sample(BASE_MS, 3, false);
    expect(limiter.limit).toBe(10);
  });

  it("keeps the initial value within its bounds", () => {
    expect(new AdaptiveLimit({ min: 5, max: 8, initial: 20 }).limit).toBe(8);
    expect(new AdaptiveLimit({ min: 5, max: 8, initial: 1 }).limit).toBe(5);
  });
});
