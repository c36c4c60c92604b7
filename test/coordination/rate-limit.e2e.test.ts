import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createBroker } from "../../src/brokers/registry.js";
import { runCli, type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

interface Run {
  pid: number;
  at: number;
  attempt: number;
  n: number;
  key?: string;
}

function handled(out: string): Run[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Run);
}

/** The most handler starts in any window of `ms` (sliding: each start opens one). */
function busiestWindow(times: number[], ms: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let from = 0;
  for (let to = 0; to < sorted.length; to++) {
    while ((sorted[to] as number) - (sorted[from] as number) >= ms) from++;
    most = Math.max(most, to - from + 1);
  }
  return most;
}

async function publish(url: string, queue: string, count: number, keyOf: (n: number) => string | undefined = () => undefined): Promise<void> {
  const broker = await createBroker(url);
  await broker.connect();
  try {
    const messages = Array.from({ length: count }, (_, n) => ({ body: new TextEncoder().encode(JSON.stringify({ n })), headers: {}, key: keyOf(n) }));
    await broker.publish(queue, messages);
  } finally {
    await broker.close();
  }
}

const brokers: Record<string, (dir: string) => string> = {
  redis: () => "redis://127.0.0.1:6379",
  sqlite: (dir) => `sqlite://${path.join(dir, "q.db")}`,
};

describe.each(Object.entries(brokers))("rateLimit on %s", (_kind, brokerOf) => {
  it(
    "2 worker processes, { max: 20, perMs: 1000 }, 200 messages: at most 22 start in any second, all in 9-12 s, none counted as an extra attempt",
    async () => {
      const dir = tempDir();
      const out = path.join(dir, "handled.jsonl");
      const queue = `rate-${randomUUID()}`;
      const app = writeApp(
        dir,
        "app.ts",
        `import { appendFileSync } from "node:fs";
export const app = new WQueue();
app.listenEvents(${JSON.stringify(queue)}, (m: { body: { n: number }; attempt: number }) => {
  appendFileSync(${JSON.stringify(out)}, JSON.stringify({ at: Date.now(), attempt: m.attempt, n: m.body.n, pid: process.pid }) + "\\n");
}, { rateLimit: { max: 20, perMs: 1000 }, concurrency: 10 });`,
      );
      const broker = brokerOf(dir);
      const workers = [0, 1].map(() => startCli(["worker", "-a", app, "--broker", broker]));
      running.push(...workers);
      await Promise.all(workers.map((w) => w.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'))));
      await publish(broker, queue, 200);
      const published = Date.now();
      await waitFor(() => `200 handled (have ${handled(out).length})`, () => handled(out).length >= 200, 30_000);
      for (const w of workers) w.child.kill("SIGTERM");
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);

      const runs = handled(out);
      expect(runs).toHaveLength(200);
      expect(new Set(runs.map((r) => r.n)).size).toBe(200);
      expect(runs.every((r) => r.attempt === 1)).toBe(true);
      const times = runs.map((r) => r.at);
      const busiest = busiestWindow(times, 1000);
      const took = Math.max(...times) - published;
      console.log(`rateLimit ${_kind}: busiest 1 s window ${busiest}, 200 handled in ${took} ms`);
      expect(busiest).toBeLessThanOrEqual(22);
      expect(took).toBeGreaterThanOrEqual(9000);
      expect(took).toBeLessThanOrEqual(12_000);
      // Both workers took part: the limit held for the two together, not for each.
      expect(new Set(runs.map((r) => r.pid)).size).toBe(2);
    },
    60_000,
  );
});

describe.each(Object.entries(brokers))("rateLimit by key on %s", (kind, brokerOf) => {
  it(
    "2 worker processes, { max: 20, perMs: 1000, by: \"key\" }, 4 keys (one busy, queued first): each key held to its own limit, the others not held back",
    async () => {
      const dir = tempDir();
      const out = path.join(dir, "handled.jsonl");
      const queue = `rate-key-${randomUUID()}`;
      const app = writeApp(
        dir,
        "app.ts",
        `import { appendFileSync } from "node:fs";
export const app = new WQueue();
app.listenEvents(${JSON.stringify(queue)}, (m: { body: { n: number }; attempt: number; key: string | undefined }) => {
  appendFileSync(${JSON.stringify(out)}, JSON.stringify({ at: Date.now(), attempt: m.attempt, n: m.body.n, key: m.key, pid: process.pid }) + "\\n");
}, { rateLimit: { max: 20, perMs: 1000, by: "key" }, concurrency: 10 });`,
      );
      const broker = brokerOf(dir);
      const workers = [0, 1].map(() => startCli(["worker", "-a", app, "--broker", broker]));
      running.push(...workers);
      await Promise.all(workers.map((w) => w.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'))));
      // 110 messages of key "busy" first in the queue, then 30 each of a, b and c behind them.
      const keyOf = (n: number) => (n < 110 ? "busy" : ["a", "b", "c"][(n - 110) % 3]);
      await publish(broker, queue, 200, keyOf);
      const published = Date.now();
      await waitFor(() => `200 handled (have ${handled(out).length})`, () => handled(out).length >= 200, 40_000);
      for (const w of workers) w.child.kill("SIGTERM");
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);

      const runs = handled(out);
      expect(new Set(runs.map((r) => r.n)).size).toBe(200);
      expect(runs.every((r) => r.attempt === 1)).toBe(true); // a deferral is not an attempt
      const report: string[] = [];
      for (const key of ["busy", "a", "b", "c"]) {
        const times = runs.filter((r) => r.key === key).map((r) => r.at);
        const busiest = busiestWindow(times, 1000);
        const took = Math.max(...times) - published;
        report.push(`${key}: ${times.length} in ${took} ms, busiest second ${busiest}`);
        expect(busiest).toBeLessThanOrEqual(22);
        if (key === "busy") expect(took).toBeGreaterThanOrEqual(5000); // 110 at 20/s
        else {
          expect(took).toBeGreaterThanOrEqual(1000); // 30 at 20/s: held to the limit...
          expect(took).toBeLessThan(4000); // ...and done in about 1.5 s, not after the busy key's 5.5 s
        }
      }
      console.log(`rateLimit by key ${kind}: ${report.join("; ")}`);
    },
    60_000,
  );
});

describe("rateLimit configuration", () => {
  it("on a broker that cannot hold state and no coordination store: one line naming the option, exit 2", async () => {
    const dir = tempDir();
    const app = writeApp(dir, "app.ts", `export const app = new WQueue();\napp.listenEvents("q", () => {}, { rateLimit: { max: 5, perMs: 1000 } });`);
    const result = await runCli(["worker", "-a", app, "--broker", "memory://x"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/coordination/);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("by key on a broker that counts every delivery (RabbitMQ): one line, exit 2, since deferrals would spend attempts", async () => {
    const dir = tempDir();
    const coordination = `sqlite://${path.join(dir, "flow.db")}`;
    const app = writeApp(
      dir,
      "app.ts",
      `export const app = new WQueue({ coordination: ${JSON.stringify(coordination)} });\napp.listenEvents("q-${randomUUID()}", () => {}, { rateLimit: { max: 5, perMs: 1000, by: "key" } });`,
    );
    const result = await runCli(["worker", "-a", app, "--broker", "amqp://guest:guest@127.0.0.1:5672"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/without counting an attempt/);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("a malformed rateLimit: one line, exit 2", async () => {
    const dir = tempDir();
    const app = writeApp(dir, "app.ts", `export const app = new WQueue();\napp.listenEvents("q", () => {}, { rateLimit: { max: 0, perMs: 1000 } });`);
    const result = await runCli(["worker", "-a", app, "--broker", "memory://x"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/rateLimit must be/);
  });
});
