/**
 * The chain build-subscription.ts composes, on the event loop runner: the hot path of a sync
 * handler stays synchronous through every step a plain subscription has, and the retry step is
 * the one that judges a failure.
 */
import { describe, expect, it } from "vitest";
import type { Delivery } from "../../src/brokers/contract.js";
import { CreditPool } from "../../src/dispatch/CreditPool.js";
import { dispatchChain, type SubscriptionSpec } from "../../src/dispatch/build-subscription.js";
import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import type { Outcome } from "../../src/pipeline/outcome.js";
import { EventLoopRunner } from "../../src/runners/EventLoopRunner.js";
import { memoryLogger } from "../helpers.js";

const retry = { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 100 };

function spec(handler: () => unknown, extra: Partial<SubscriptionSpec> = {}): SubscriptionSpec {
  const recorded: Outcome[] = [];
  return {
    id: "default/q",
    queue: "q",
    consumer: new MemoryBroker(`memory://chain-${Math.random()}`).consumer("q"),
    runner: new EventLoopRunner(new Map([["default/q", { handler, format: "json" }]])),
    pool: new CreditPool(1, 1),
    concurrency: 1,
    logger: memoryLogger().logger,
    retry,
    maxDeliveries: 3,
    stats: { received: 0, record: (outcome) => recorded.push(outcome) },
    ...extra,
  };
}

const delivery = (attempt = 1) => ({ id: "m1", queue: "q", body: Buffer.from("{}"), headers: {}, key: undefined, attempt }) as unknown as Delivery;
const live = new AbortController().signal;

describe("dispatchChain", () => {
  it("answers a sync handler synchronously: no promise through stats, logging, retry and suspect steps", () => {
    const result = dispatchChain(spec(() => {}))(delivery(), live);
    expect(result).not.toBeInstanceOf(Promise);
    expect(result).toEqual({ type: "ack" });
  });

  it("maps a failure in the retry step: backoff while attempts last, then a dead letter", () => {
    const chain = dispatchChain(
      spec(() => {
        throw new Error("boom");
      }),
    );
    expect(chain(delivery(1), live)).toMatchObject({ type: "retry", delayMs: expect.any(Number), error: { message: "boom" } });
    expect(chain(delivery(3), live)).toMatchObject({ type: "dead", reason: { reason: "handler-failed" } });
  });

  it("gives a suspect its poison verdict without running the handler when there is no sandbox", async () => {
    let ran = false;
    const result = await dispatchChain(
      spec(() => {
        ran = true;
      }),
    )(delivery(4), live);
    expect(result).toMatchObject({ type: "dead", reason: { reason: "poison" } });
    expect(ran).toBe(false);
  });

  it("turns a soft timeout into a HandlerTimeout retry decided by the retry step", async () => {
    const chain = dispatchChain(spec(() => new Promise(() => {}), { timeoutMs: 20 }));
    expect(await chain(delivery(1), live)).toMatchObject({ type: "retry", error: { name: "HandlerTimeout" } });
  });
});
