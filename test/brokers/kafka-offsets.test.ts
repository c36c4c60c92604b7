import type { KafkaMessage } from "kafkajs";
import { describe, expect, it, vi } from "vitest";
import { OffsetCommitter } from "../../src/brokers/kafka/offset-committer.js";
import { type KafkaRecord, PartitionState } from "../../src/brokers/kafka/partition-state.js";
import { waitFor } from "../helpers.js";

// Unit tests of the offset bookkeeping, without a broker: what may be committed, when.

const message = (offset: number, headers: KafkaMessage["headers"] = {}): KafkaMessage => ({
  key: null,
  value: Buffer.from(`m${offset}`),
  offset: String(offset),
  timestamp: "0",
  attributes: 0,
  headers,
});

function partition(offsets: number[], prior = new Map<number, number>()) {
  let due = 0;
  const state = new PartitionState("topic", 0, () => {
    due += 1;
  });
  state.setPrior(prior);
  state.addBatch(offsets.map((offset) => message(offset)));
  const take = (max: number) => {
    const out: KafkaRecord[] = [];
    state.take(max, out);
    return out;
  };
  return { state, take, due: () => due };
}

describe("kafka partition state", () => {
  it("commits only below the lowest unfinished offset, whatever finished above it", () => {
    const { state, take } = partition([10, 11, 12, 13]);
    expect(state.commitPoint()).toBe(10);
    const [r10, r11, r12, r13] = take(4) as KafkaRecord[];
    state.finish(r11 as KafkaRecord);
    state.finish(r13 as KafkaRecord);
    expect(state.commitPoint()).toBe(10);
    state.finish(r10 as KafkaRecord);
    expect(state.commitPoint()).toBe(12);
    state.finish(r12 as KafkaRecord);
    expect(state.commitPoint()).toBe(14); // all done: the next offset to fetch
  });

  it("keeps its cursors right when it drops a long finished prefix", () => {
    const { state, take } = partition(Array.from({ length: 5000 }, (_, i) => i));
    const first = take(3000);
    for (const record of first.slice(0, 2500)) state.finish(record);
    expect(state.commitPoint()).toBe(2500);
    expect(state.buffered).toBe(2000);
    expect(take(3).map((r) => r.offset)).toEqual([3000, 3001, 3002]);
    for (const record of first.slice(2500)) state.finish(record);
    expect(state.commitPoint()).toBe(3000);
    expect(state.metadata(3000)).toBe("wq1:0-2.1");
  });

  it("drops records fetched again after a rejoin, below what it already holds", () => {
    const { state, take } = partition([0, 1, 2]);
    state.addBatch([message(1), message(3)]);
    expect(take(10).map((r) => r.offset)).toEqual([0, 1, 2, 3]);
  });

  it("counts deliveries, including earlier owners' from commit metadata, and lists them for the next commit", () => {
    const { state, take } = partition([5, 6], new Map([[5, 2]]));
    const [r5, r6] = take(2) as KafkaRecord[];
    expect(r5?.deliveries).toBe(3);
    expect(r6?.deliveries).toBe(1);
    expect(state.metadata(5)).toBe("wq1:0.3,1.1");
    state.finish(r6 as KafkaRecord);
    expect(state.metadata(5)).toBe("wq1:0.3");
  });

  it("with onePerPartition hands out one record at a time: the next only once it is settled", () => {
    const { state } = partition([0, 1, 2]);
    const take = (max: number) => {
      const out: KafkaRecord[] = [];
      state.take(max, out, true);
      return out;
    };
    const [r0] = take(5);
    expect(r0?.offset).toBe(0);
    expect(take(5)).toEqual([]); // 1 and 2 are neither handed out nor counted
    state.retry(r0 as KafkaRecord, 0);
    const [again] = take(5);
    expect([again?.offset, again?.deliveries]).toEqual([0, 2]);
    state.finish(again as KafkaRecord);
    expect(take(5).map((r) => [r.offset, r.deliveries])).toEqual([[1, 1]]);
    expect(state.metadata(1)).toBe("wq1:0.1"); // offset 2 never counted
  });

  it("write-ahead: hands out only records a confirmed commit counts, claiming a window ahead", () => {
    const { state } = partition([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    state.claimAhead = 4;
    const take = (max: number) => {
      const out: KafkaRecord[] = [];
      state.take(max, out);
      return out;
    };
    expect(take(3)).toEqual([]);
    expect(state.blocked).toBe(true); // nothing counted yet
    expect(state.metadata(0)).toBe("wq1:0-3.1"); // one delivery claimed for the next 4
    expect(take(3)).toEqual([]); // not confirmed yet: the commit may still fail
    state.confirmClaims();
    const first = take(3);
    expect(first.map((r) => r.offset)).toEqual([0, 1, 2]);
    expect(state.refill).toBe(true); // half the window is used: claim more now
    expect(take(3).map((r) => r.offset)).toEqual([3]);
    expect(state.blocked).toBe(true);
    // The next commit lists the 4 out and claims 4 more; a failed one changes nothing.
    expect(state.metadata(0)).toBe("wq1:0-7.1");
    state.confirmClaims();
    state.retry(first[0] as KafkaRecord, 0); // back in the queue: its second delivery is not counted yet
    expect(take(1)).toEqual([]);
    expect(state.metadata(0)).toBe("wq1:0.2,1-7.1");
    state.confirmClaims();
    expect(take(1).map((r) => [r.offset, r.deliveries])).toEqual([[0, 2]]);
    // During a rebalance nothing goes out, and the commit claims nothing ahead: a new owner
    // of the partition sees 4-7 as first deliveries.
    state.rebalancing = true;
    expect(state.metadata(0)).toBe("wq1:0.2,1-3.1");
    state.confirmClaims();
    expect(take(1)).toEqual([]);
    expect(state.blocked).toBe(false); // waits for the assignment, not for a commit
    state.rebalancing = false;
    expect(take(1)).toEqual([]);
    expect(state.blocked).toBe(true); // its claims were given up: claimed again first
    // On close only what was handed out is counted, too.
    state.claimAhead = 0;
    expect(state.metadata(0)).toBe("wq1:0.2,1-3.1");
  });

  it("hands a nacked record out again after its delay, before fresh ones", async () => {
    const { state, take, due } = partition([0, 1]);
    const [r0] = take(1) as KafkaRecord[];
    state.retry(r0 as KafkaRecord, 50);
    expect(take(1).map((r) => r.offset)).toEqual([1]);
    expect(take(1)).toEqual([]);
    await waitFor("the retry to be due", () => due() === 1, 2000);
    const [again] = take(1);
    expect(again?.offset).toBe(0);
    expect(again?.deliveries).toBe(2);
    expect(state.commitPoint()).toBe(0); // unfinished meanwhile
  });

  it("holds a record published with a delay until its time", async () => {
    const state = new PartitionState("topic", 0, () => {});
    state.setPrior(new Map());
    state.addBatch([message(0, { "x-wqueue-not-before": Buffer.from(String(Date.now() + 100)) })]);
    const out: KafkaRecord[] = [];
    state.take(1, out);
    expect(out).toEqual([]);
    await waitFor(
      "the delayed record",
      () => {
        state.take(1, out);
        return out.length === 1;
      },
      2000,
    );
  });

  it("is emptied on revoke: later settles and retries do nothing", () => {
    const { state, take } = partition([0, 1]);
    const [r0] = take(1) as KafkaRecord[];
    state.revoke();
    state.retry(r0 as KafkaRecord, 0);
    expect(take(5)).toEqual([]);
    expect(state.buffered).toBe(0);
  });

  it("hands out nothing until earlier owners' delivery counts are known", () => {
    const state = new PartitionState("topic", 0, () => {});
    state.addBatch([message(0)]);
    const out: KafkaRecord[] = [];
    state.take(1, out);
    expect(out).toEqual([]);
    state.setPrior(new Map());
    state.take(1, out);
    expect(out.map((r) => r.offset)).toEqual([0]);
  });
});

describe("kafka offset committer", () => {
  it("commits at once, not at the interval, once eagerAfter acks wait", async () => {
    // Fake clock: "not yet" and "at once" are then exact, whatever the machine's load.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    try {
      const sent: string[][] = [];
      const committer = new OffsetCommitter(
        async (offsets) => {
          sent.push(offsets.map(({ offset }) => offset));
        },
        () => {},
        2,
      );
      const { state, take } = partition([0, 1, 2, 3]);
      const records = take(4);
      state.finish(records[0] as KafkaRecord);
      committer.acked(state);
      await vi.advanceTimersByTimeAsync(0);
      expect(sent, "the first commit (after a quiet spell: at once)").toHaveLength(1);
      // Within the interval (200 ms): one ack waits for it...
      state.finish(records[1] as KafkaRecord);
      committer.acked(state);
      await vi.advanceTimersByTimeAsync(150);
      expect(sent).toHaveLength(1);
      // ...the second (eagerAfter = 2) sends at once.
      state.finish(records[2] as KafkaRecord);
      committer.acked(state);
      await vi.advanceTimersByTimeAsync(0);
      expect(sent).toHaveLength(2);
      expect(sent[1]).toEqual(["3"]);
      committer.stop();
    } finally {
      vi.useRealTimers();
    }
  });


  it("batches marks into one commit at once after a quiet spell, skipping unchanged partitions", async () => {
    const sent: { partition: number; offset: string }[][] = [];
    const committer = new OffsetCommitter(
      async (offsets) => {
        sent.push(offsets.map(({ partition, offset }) => ({ partition, offset })));
      },
      () => {},
    );
    const { state, take } = partition([0, 1, 2]);
    const records = take(3);
    for (const record of records) {
      state.finish(record);
      committer.mark(state);
    }
    await waitFor("the first commit", () => sent.length === 1, 2000);
    expect(sent[0]).toEqual([{ partition: 0, offset: "3" }]);
    committer.mark(state); // nothing changed: no second commit
    await committer.flush();
    expect(sent).toHaveLength(1);
    committer.stop();
  });
});
