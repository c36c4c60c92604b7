import { describe, expect, it } from "vitest";
import { type ReadyQueue, summariseQueues } from "../../src/worker/ready-line.js";

const on = (broker: string, kind: string, names: string[]): ReadyQueue[] =>
  names.map((queue) => ({ queue, broker, kind, delivery: "at-least-once" }));

describe("the ready line's queues", () => {
  it("names each queue while there are few", () => {
    const { text, brokers } = summariseQueues(on("redis://r", "redis-reliable", ["a", "b"]));
    expect(text).toBe("a @ redis://r (redis-reliable, at-least-once); b @ redis://r (redis-reliable, at-least-once)");
    expect(brokers).toEqual([{ broker: "redis://r", kind: "redis-reliable", delivery: "at-least-once", queues: 2, first: ["a", "b"] }]);
  });

  it("summarises many: the count per broker and its first five names, bounded whatever the number", () => {
    const many = [...on("redis://r", "redis-reliable", Array.from({ length: 1000 }, (_, i) => `tenant-${i}`)), ...on("sqlite:///x.db", "sqlite", ["local"])];
    const { text, brokers } = summariseQueues(many);
    expect(text).toBe(
      "1001 (1000 @ redis://r (redis-reliable, at-least-once): tenant-0, tenant-1, tenant-2, tenant-3, tenant-4 and 995 more; 1 @ sqlite:///x.db (sqlite, at-least-once): local)",
    );
    expect(brokers.map(({ queues }) => queues)).toEqual([1000, 1]);
  });
});
