import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { edgeBrokers } from "./edge-brokers.js";

/**
 * A handler three times slower than the broker's lease (visibility, ack wait, claim idle time,
 * heartbeat, session or shard lease), with two workers on the queue. The promise under attack:
 * while a handler runs its message stays owned, so it runs exactly once (not again in the same
 * worker, not in the other one) and is acked at the end.
 */
const running: RunningCli[] = [];
afterAll(() => {
  for (const cli of running) cli.child.kill("SIGKILL");
});

const brokers = edgeBrokers("long");

function slowApp(dir: string, queue: string, runMs: number): { file: string; out: string } {
  const out = path.join(dir, "runs.txt");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
app.listenEvents(${JSON.stringify(queue)}, async (m: { body: { id: number }; attempt: number }) => {
  appendFileSync(${JSON.stringify(out)}, "start " + m.body.id + " " + process.pid + " " + m.attempt + "\\n");
  if (m.body.id === 0) await new Promise((resolve) => setTimeout(resolve, ${runMs}));
  appendFileSync(${JSON.stringify(out)}, "end " + m.body.id + " " + process.pid + "\\n");
});`,
  );
  return { file, out };
}

const lines = (out: string) => (existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean) : []);

describe.concurrent("a handler slower than the broker's lease", () => {
  it.each(brokers)(
    "$name: a handler running 3x the lease runs exactly once, is acked, and a second worker does not get it",
    async ({ setup, leaseMs }) => {
      const target = await setup();
      try {
      const { file, out } = slowApp(tempDir(), target.queue, 3 * leaseMs);
      const workers = [0, 1].map(() => {
        const cli = startCli(["worker", "-a", file, "--broker", target.url]);
        running.push(cli);
        return cli;
      });
      await Promise.all(workers.map((cli) => cli.waitForLine("ready", (line) => line.includes('"ready: '), 90_000)));
      // Kafka: the second worker may still be joining when the slow record starts; the first one
      // then holds its rejoin until the record is done (kafka-rebalance.test.ts covers it directly).
      // The slow message first, then quick ones: they must flow while it runs.
      await target.publish([0, 1, 2, 3].map((id) => ({ id })));
      await waitFor(() => `the slow handler to end (${lines(out).join(" | ")})`, () => lines(out).includes(`end 0 ${pidOfStart(lines(out))}`), 9 * leaseMs + 30_000);
      // A second run would start within one lease after the first was lost: watch for two.
      const watchUntil = Date.now() + 2 * leaseMs;
      await waitFor("the watch window", () => Date.now() > watchUntil || lines(out).filter((l) => l.startsWith("start 0 ")).length > 1, 4 * leaseMs);
      for (const cli of workers) cli.child.kill("SIGTERM");
      expect(await Promise.all(workers.map((cli) => cli.exited))).toEqual([0, 0]);
      const starts = lines(out).filter((l) => l.startsWith("start 0 "));
      expect(starts, "the slow message ran more than once").toHaveLength(1);
      expect(starts[0]?.endsWith(" 1"), `first delivery: ${starts[0]}`).toBe(true);
      const ended = new Set(lines(out).filter((l) => l.startsWith("end ")).map((l) => l.split(" ")[1]));
      expect([...ended].sort()).toEqual(["0", "1", "2", "3"]);
      // Acked: nothing of it is left on the queue for the next consumer.
      expect((await target.takeQueued()).map((d) => Buffer.from(d.body).toString())).toEqual([]);
      } finally {
        await target.close();
      }
    },
    180_000,
  );
});

function pidOfStart(all: string[]): string | undefined {
  return all.find((l) => l.startsWith("start 0 "))?.split(" ")[2];
}
