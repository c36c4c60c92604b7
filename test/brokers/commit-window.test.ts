import { describe, expect, it } from "vitest";
import { CommitWindow } from "../../src/brokers/commit-window.js";
import { waitFor } from "../helpers.js";

/** The lowest-unfinished commit window both log adapters (Kafka, Kinesis) keep their records in. */
interface Rec {
  n: number;
  done: boolean;
  out: boolean;
}
const rec = (n: number): Rec => ({ n, done: false, out: false });

function windowOf(count: number, onDelayPassed: (record: Rec) => void = () => {}): CommitWindow<Rec> {
  const window = new CommitWindow<Rec>(onDelayPassed);
  for (let n = 0; n < count; n += 1) window.records.push(rec(n));
  return window;
}

function handOutAll(window: CommitWindow<Rec>): Rec[] {
  const out: Rec[] = [];
  while (window.next < window.records.length) {
    const record = window.records[window.next] as Rec;
    window.next += 1;
    window.handOut(record);
    out.push(record);
  }
  return out;
}

describe("CommitWindow", () => {
  it("moves the head only past a finished prefix, whatever finished out of order above it", () => {
    const window = windowOf(4);
    const [r0, r1, r2, r3] = handOutAll(window) as [Rec, Rec, Rec, Rec];
    expect(window.outstanding).toBe(4);
    expect(window.finish(r2)).toBeUndefined();
    expect(window.finish(r1)).toBeUndefined();
    expect(window.head).toBe(0);
    expect(window.finish(r0)).toBe(r2); // the prefix 0-2 is finished: the commit point is after r2
    expect(window.head).toBe(3);
    expect(window.outstanding).toBe(1);
    window.back(r3);
    window.back(r3); // once only
    expect(window.outstanding).toBe(0);
  });

  it("drops a long finished prefix, and the cursors and the dropped count move with it", () => {
    const window = windowOf(3000);
    const out = handOutAll(window);
    window.next = 2500; // as if 500 were not handed out yet
    for (const record of out.slice(0, 2000)) window.finish(record);
    // Dropped once the finished prefix (1,500) was at least 1,024 and half the array.
    expect(window.dropped).toBe(1500);
    expect(window.head).toBe(500);
    expect(window.next).toBe(1000);
    expect(window.records[window.head]?.n).toBe(2000);
  });

  it("gives a delayed record back once its delay passed, unless it finished or the window was cleared", async () => {
    const passed: number[] = [];
    const window = windowOf(3, (record) => passed.push(record.n));
    const [r0, r1, r2] = handOutAll(window) as [Rec, Rec, Rec];
    for (const record of [r0, r1, r2]) {
      window.back(record);
      window.later(record, 5);
    }
    window.finish(r1);
    expect(window.delayed).toBe(3);
    await waitFor("the delays to pass", () => window.delayed === 0);
    expect(passed).toEqual([0, 2]);
    window.later(r0, 5);
    window.clear();
    expect(window.delayed).toBe(0);
    expect([window.records.length, window.head, window.next, window.outstanding, window.due.length]).toEqual([0, 0, 0, 0, 0]);
  });
});
