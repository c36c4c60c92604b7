import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY, retryDelayMs } from "../../src/pipeline/backoff.js";
import { decodeBody } from "../../src/pipeline/decode.js";
import { DeadLetterNow, DecodeError, RetryLater } from "../../src/errors.js";
import { failureOutcome } from "../../src/pipeline/run-handler.js";

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
    const prepared = { handler: () => {}, format: "json" as const, retry: policy };
    expect(failureOutcome(prepared, 1, new Error("x")).type).toBe("retry");
    expect(failureOutcome(prepared, 3, new Error("x")).type).toBe("retry");
    const last = failureOutcome(prepared, 4, new Error("x"));
    expect(last).toMatchObject({ type: "dead", reason: { reason: "handler-failed", error: { name: "Error", message: "x" } } });
  });

  it("honours RetryLater and DeadLetterNow, and no-retry subscriptions", () => {
    const prepared = { handler: () => {}, format: "json" as const, retry: policy };
    expect(failureOutcome(prepared, 1, new RetryLater(1234))).toMatchObject({ type: "retry", delayMs: 1234 });
    expect(failureOutcome(prepared, 1, new DeadLetterNow("bad order"))).toMatchObject({
      type: "dead",
      reason: { reason: "dead-letter-requested" },
    });
    expect(failureOutcome({ ...prepared, retry: undefined }, 1, new Error("x")).type).toBe("dead");
  });
});
