import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY, retryDelayMs } from "../../src/pipeline/backoff.js";
import { decodeBody } from "../../src/pipeline/decode.js";
import { DeadLetterNow, DecodeError, RetryLater } from "../../src/errors.js";
import { failed } from "../../src/pipeline/outcome.js";
import { decideFailure } from "../../src/pipeline/retry-decision.js";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("decodeBody", () => {
  it("parses JSON, keeps text and bytes", () => {
    expect(decodeBody(bytes('{"a":[1]}'), "json")).toEqual({ a: [1] });
    expect(decodeBody(bytes("5"), "json")).toBe(5);
    expect(decodeBody(bytes("héllo"), "text")).toBe("héllo");
    const raw = new Uint8Array([0xff, 0]);
    expect(decodeBody(raw, "bytes")).toBe(raw);
  });

  it("throws DecodeError naming the problem for bad JSON and bad UTF-8", () => {
    expect(() => decodeBody(bytes("{oops"), "json")).toThrow(DecodeError);
    expect(() => decodeBody(bytes("{oops"), "json")).toThrow(/payload is not JSON .*"\{oops"/);
    expect(() => decodeBody(new Uint8Array([0xff, 0xfe]), "text")).toThrow(/not valid UTF-8/);
  });
});

describe("retry policy", () => {
  const policy = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000 };

  it("backs off exponentially with jitter within [cap/2, cap] and a ceiling", () => {
    expect(retryDelayMs(1, policy, () => 0)).toBe(50);
    expect(retryDelayMs(1, policy, () => 1)).toBe(100);
    expect(retryDelayMs(3, policy, () => 1)).toBe(400);
    expect(retryDelayMs(10, policy, () => 1)).toBe(1000);
    expect(DEFAULT_RETRY.maxAttempts).toBeGreaterThan(1);
  });

  it("retries until maxAttempts, then dead-letters", () => {
    expect(decideFailure(policy, 1, failed(new Error("x"))).type).toBe("retry");
    expect(decideFailure(policy, 3, failed(new Error("x"))).type).toBe("retry");
    const last = decideFailure(policy, 4, failed(new Error("x")));
    expect(last).toMatchObject({ type: "dead", reason: { reason: "handler-failed", error: { name: "Error", message: "x" } } });
  });

  it("honours RetryLater and DeadLetterNow, and no-retry subscriptions", () => {
    // RetryLater's delay survives as data (it crosses threads), not as the error object.
    const later = failed(new RetryLater(1234));
    expect(structuredClone(later)).toMatchObject({ type: "failed", retryInMs: 1234, error: { name: "RetryLater" } });
    expect(decideFailure(policy, 1, structuredClone(later))).toMatchObject({ type: "retry", delayMs: 1234 });
    expect(decideFailure(policy, 1, failed(new DeadLetterNow("bad order")))).toMatchObject({
      type: "dead",
      reason: { reason: "dead-letter-requested" },
    });
    expect(decideFailure(undefined, 1, failed(new Error("x"))).type).toBe("dead");
  });
});
