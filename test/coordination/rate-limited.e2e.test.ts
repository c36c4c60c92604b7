import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createBroker } from "../../src/brokers/registry.js";
import { type RunningCli, startCli, tempDir, WQUEUE_IMPORT, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

interface Start {
  at: number;
  n: number;
  attempt: number;
  pid: number;
}

function starts(out: string): Start[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Start);
}

/** A start racing the pause by one store round trip (it was admitted just before) is not a breach. */
const RACE_MS = 100;
const PAUSE_MS = 2000;

const brokers: Record<string, (dir: string) => string> = {
  redis: () => "redis://127.0.0.1:6379",
  sqlite: (dir) => `sqlite://${path.join(dir, "q.db")}`,
};

describe.each(Object.entries(brokers))("RateLimited on %s", (kind, brokerOf) => {
  it(
    `thrown once by one of 2 workers: no message of the queue starts on either for ${PAUSE_MS} ms, and the thrown message comes back with its attempt unchanged`,
    async () => {
      const dir = tempDir();
      const out = path.join(dir, "starts.jsonl");
      const mark = path.join(dir, "thrown");
      const queue = `paused-${randomUUID()}`;
      const app = writeApp(
        dir,
        "app.ts",
        `import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { RateLimited } from ${JSON.stringify(WQUEUE_IMPORT)};
export const app = new WQueue();
app.listenEvents(${JSON.stringify(queue)}, async (m: { body: { n: number }; attempt: number }) => {
  const at = Date.now();
  appendFileSync(${JSON.stringify(out)}, JSON.stringify({ at, n: m.body.n, attempt: m.attempt, pid: process.pid }) + "\\n");
  if (m.body.n === 0 && !existsSync(${JSON.stringify(mark)})) {
    writeFileSync(${JSON.stringify(mark)}, String(at));
    throw new RateLimited(${PAUSE_MS});
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}, { concurrency: 1 });`,
      );
      const broker = brokerOf(dir);
      const workers = [0, 1].map(() => startCli(["worker", "-a", app, "--broker", broker]));
      running.push(...workers);
      await Promise.all(workers.map((w) => w.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'))));

      const publisher = await createBroker(broker);
      await publisher.connect();
      try {
        const messages = Array.from({ length: 20 }, (_, n) => ({ body: new TextEncoder().encode(JSON.stringify({ n })), headers: {} }));
        await publisher.publish(queue, messages);
      } finally {
        await publisher.close();
      }
      await waitFor(() => `21 starts (have ${starts(out).length})`, () => starts(out).length >= 21, 30_000);
      for (const w of workers) w.child.kill("SIGTERM");
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);

      const all = starts(out);
      const thrownAt = Number(readFileSync(mark, "utf8"));
      const zero = all.filter((s) => s.n === 0);
      expect(zero).toHaveLength(2);
      expect(zero.map((s) => s.attempt)).toEqual([1, 1]);
      expect(zero[1]?.at).toBeGreaterThanOrEqual(thrownAt + PAUSE_MS - 10);
      const during = all.filter((s) => s.at > thrownAt + RACE_MS && s.at < thrownAt + PAUSE_MS - 10);
      const next = all.filter((s) => s.at > thrownAt).sort((a, b) => a.at - b.at);
      console.log(
        `RateLimited ${kind}: starts after the throw at +${next.map((s) => s.at - thrownAt).slice(0, 4).join(", +")} ms; ${new Set(all.map((s) => s.pid)).size} worker(s) ran messages`,
      );
      expect(during).toEqual([]);
      // Both workers were running the queue: the pause held for the one that did not throw.
      expect(new Set(all.map((s) => s.pid)).size).toBe(2);
    },
    60_000,
  );
});
