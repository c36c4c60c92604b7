import { afterEach, describe, expect, it } from "vitest";
import { runCli, tempDir } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { startObservedWorker, stopObservedWorkers } from "./observed-worker.js";

afterEach(stopObservedWorkers);

interface History {
  intervalMs: number;
  samples: { time: number; queues: { queue: string; done: number }[] }[];
}

describe("GET /api/history", () => {
  it("keeps samples of each queue's totals taken by the server, so a page opened later has them", async () => {
    const { cli, broker, base } = await startObservedWorker(tempDir());
    const history = async () => (await (await fetch(`${base}/api/history`)).json()) as History;
    // The first sample is taken when the endpoint starts (before the queues are subscribed).
    const first = await history();
    expect(first.samples.length).toBeGreaterThanOrEqual(1);

    const lines = Array.from({ length: 7 }, (_, i) => JSON.stringify({ i })).join("\n");
    expect((await runCli(["push", "orders", "--broker", broker], { input: lines })).code).toBe(0);
    let last = first;
    await waitFor(
      () => `a later sample with the 7 handled (last: ${JSON.stringify(last.samples.at(-1))})`,
      async () => {
        last = await history();
        return last.samples.at(-1)?.queues.find((q) => q.queue === "orders")?.done === 7;
      },
      4 * first.intervalMs,
    );
    const times = last.samples.map((s) => s.time);
    expect(times.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThan(first.intervalMs / 2);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 40_000);
});
