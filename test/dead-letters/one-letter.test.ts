import { afterEach, describe, expect, it } from "vitest";
import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import { deleteOneDeadLetter, replayOneDeadLetter } from "../../src/dead-letters/dead-letters.js";

afterEach(() => MemoryBroker.reset());

const dead = (n: number) => ({ body: Buffer.from(`{"n":${n}}`), headers: { "x-wqueue-dead-queue": "q", "x-wqueue-dead-reason": "handler-failed", "x-other": "kept" } });

describe("a single dead letter on the memory broker", () => {
  it("deletes only the one named, and replays only the one named to the queue it died on", async () => {
    const broker = new MemoryBroker("memory://one-letter");
    await broker.publish("q.dead", [dead(0), dead(1), dead(2)]);
    const [first, second, third] = broker.waiting("q.dead");
    const target = { broker, deadQueue: "q.dead", replayBroker: broker };

    expect(await deleteOneDeadLetter(target, first?.id ?? "")).toBe(true);
    expect(await deleteOneDeadLetter(target, first?.id ?? "")).toBe(false);
    expect(broker.waiting("q.dead").map((m) => m.id)).toEqual([second?.id, third?.id]);

    expect(await replayOneDeadLetter(target, third?.id ?? "")).toBe(true);
    expect(broker.waiting("q.dead").map((m) => m.id)).toEqual([second?.id]);
    const replayed = broker.waiting("q");
    expect(replayed).toHaveLength(1);
    expect(Buffer.from(replayed[0]?.body ?? []).toString()).toBe('{"n":2}');
    // The dead-letter headers are dropped, the message's own kept.
    expect(replayed[0]?.headers).toEqual({ "x-other": "kept" });
    expect(await replayOneDeadLetter(target, "no-such-id")).toBe(false);
    await broker.close();
  });
});
