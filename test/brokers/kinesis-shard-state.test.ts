import { describe, expect, it } from "vitest";
import { type ShardRecord, ShardState } from "../../src/brokers/kinesis/ShardState.js";

/**
 * A shard's state under a lease this worker took again while records of its earlier lease still
 * ran (KinesisConsumer keeps those runs): they are not handed out again until the earlier run
 * settles, and that settle counts here.
 */
const data = (body: string) => new TextEncoder().encode(body);
const records = (...sequences: string[]) => sequences.map((sequence) => ({ SequenceNumber: sequence, Data: data(`r${sequence}`), PartitionKey: "k" }));

function take(state: ShardState, max = 10): ShardRecord[] {
  const out: ShardRecord[] = [];
  state.take(max, out);
  return out;
}

describe("ShardState, records still running under an earlier lease", () => {
  it("holds them back and keeps the checkpoint below them until that run finishes", () => {
    const state = new ShardState("s", "shard-0", undefined, () => {}, ["2"]);
    state.add(records("1", "2", "3"));
    const out = take(state);
    expect(out.map((record) => record.sequence)).toEqual(["1", "3"]);
    for (const record of out) state.finish(record);
    expect(state.drained).toBe(false); // "2" still runs
    expect(state.checkpoint()?.sequence).toBe("1");
    expect(state.settleEarlier("2", "finished")).toBe(true);
    expect(state.drained).toBe(true);
    expect(state.checkpoint()?.sequence).toBe("3");
    expect(take(state)).toEqual([]);
  });

  it("a run that finished before its record was read: finished unseen when read", () => {
    const state = new ShardState("s", "shard-0", undefined, () => {}, ["1"]);
    expect(state.settleEarlier("1", "finished")).toBe(true);
    state.add(records("1", "2"));
    const out = take(state);
    expect(out.map((record) => record.sequence)).toEqual(["2"]);
    state.finish(out[0] as ShardRecord);
    expect(state.checkpoint()?.sequence).toBe("2");
  });

  it("a run given back (retry): the record is handed out here", () => {
    let due = 0;
    const state = new ShardState("s", "shard-0", undefined, () => {
      due += 1;
    }, ["1"]);
    state.add(records("1"));
    expect(take(state)).toEqual([]);
    expect(state.settleEarlier("1", "retry")).toBe(true);
    expect(due).toBe(1);
    expect(take(state).map((record) => record.sequence)).toEqual(["1"]);
    expect(state.settleEarlier("1", "finished")).toBe(false); // settled once only
  });
});
