import { randomUUID } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli, type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";

const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

/** An app whose only job is a cron writing "pid scheduledAt" per run into `out`. */
function cronApp(dir: string, out: string, expression: string, extra = ""): string {
  return writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
export const app = new WQueue({ name: ${JSON.stringify(`cron-${randomUUID()}`)}${extra} });
app.cron("tick", ${JSON.stringify(expression)}, (tick) => {
  appendFileSync(${JSON.stringify(out)}, process.pid + " " + tick.scheduledAt.getTime() + "\\n");
  if (tick.scheduledAt.getTime() % 4000 === 0) throw new Error("every other tick fails: logged, not fatal");
});`,
  );
}

function runs(out: string): { pid: string; at: number }[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [pid, at] = line.split(" ");
      return { pid: pid as string, at: Number(at) };
    });
}

const brokers: Record<string, (dir: string) => string> = {
  redis: () => "redis://127.0.0.1:6379",
  sqlite: (dir) => `sqlite://${path.join(dir, "q.db")}`,
};

describe.each(Object.entries(brokers))("app.cron on %s", (_kind, brokerOf) => {
  it(
    "3 worker processes, */2 seconds for 10 s: 5 +/- 1 runs in all, each tick once, failures logged and the workers live on",
    async () => {
      const dir = tempDir();
      const out = path.join(dir, "runs.txt");
      const app = cronApp(dir, out, "*/2 * * * * *");
      const broker = brokerOf(dir);
      const workers = [0, 1, 2].map(() => startCli(["worker", "-a", app, "--broker", broker]));
      running.push(...workers);
      await Promise.all(workers.map((w) => w.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'))));
      const from = Date.now();
      // The property is about a 10 s span of time itself: watch it whole.
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      const to = Date.now();
      for (const w of workers) w.child.kill("SIGTERM");
      const codes = await Promise.all(workers.map((w) => w.exited));
      expect(codes).toEqual([0, 0, 0]);

      const all = runs(out);
      const ticks = all.map((r) => r.at);
      expect(new Set(ticks).size).toBe(ticks.length); // no tick ran twice
      const inWindow = ticks.filter((at) => at >= from && at < to);
      expect(inWindow.length).toBeGreaterThanOrEqual(4);
      expect(inWindow.length).toBeLessThanOrEqual(6);
      for (const at of ticks) expect(at % 2000).toBe(0);
      // The ticks that threw were logged as errors by the worker that ran them, which went on.
      const failedLines = workers.flatMap((w) => w.stdout).filter((l) => l.includes("cron tick failed"));
      expect(failedLines.length).toBe(ticks.filter((at) => at % 4000 === 0).length);
    },
    40_000,
  );
});

describe("app.cron under --processes", () => {
  it("3 children of one supervisor run each tick once; /api/stats adds up their runs", async () => {
    const dir = tempDir();
    const out = path.join(dir, "runs.txt");
    const app = cronApp(dir, out, "* * * * * *");
    const worker = startCli(["worker", "-a", app, "--broker", `sqlite://${path.join(dir, "q.db")}`, "--processes", "3", "--http", "127.0.0.1:0"]);
    running.push(worker);
    const line = await worker.waitForLine("the http line", (l) => l.includes('"msg":"http: '));
    const base = `http://${JSON.parse(line).http}`;
    const deadline = Date.now() + 20_000;
    while (runs(out).length < 4) {
      if (Date.now() > deadline) throw new Error(`4 runs expected, have ${runs(out).length}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const stats = (await (await fetch(`${base}/api/stats`)).json()) as { processes: number; crons: { name: string; runs: number; skipped: number }[] };
    const seen = runs(out);
    expect(new Set(seen.map((r) => r.at)).size).toBe(seen.length);
    expect(new Set(seen.map((r) => r.pid)).size).toBeGreaterThanOrEqual(1);
    expect(stats.crons).toHaveLength(1);
    // Runs counted by the children add up to the ticks written (give or take one tick in progress).
    expect(Math.abs((stats.crons[0]?.runs ?? 0) - seen.length)).toBeLessThanOrEqual(1);
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 40_000);
});

describe("app.cron configuration", () => {
  it("an app with cron jobs on a broker that cannot hold state, and no coordination store: one line naming the option, exit 2", async () => {
    const dir = tempDir();
    const app = cronApp(dir, path.join(dir, "runs.txt"), "*/2 * * * * *");
    const result = await runCli(["worker", "-a", app, "--broker", "memory://x"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/coordination/);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("a bad expression: one line naming the job, exit 2", async () => {
    const dir = tempDir();
    const app = cronApp(dir, path.join(dir, "runs.txt"), "every minute");
    const result = await runCli(["worker", "-a", app, "--broker", `sqlite://${path.join(dir, "q.db")}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/app\.cron\("tick", "every minute"\)/);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("with new WQueue({ coordination }) a memory broker app runs its cron, counted in /api/stats, /metrics and wqueue stats", async () => {
    const dir = tempDir();
    const out = path.join(dir, "runs.txt");
    const app = cronApp(dir, out, "* * * * * *", `, coordination: ${JSON.stringify(`sqlite://${path.join(dir, "flow.db")}`)}`);
    const worker = startCli(["worker", "-a", app, "--broker", "memory://x", "--http", "127.0.0.1:0"]);
    running.push(worker);
    const line = await worker.waitForLine("the http line", (l) => l.includes('"msg":"http: '));
    const base = `http://${JSON.parse(line).http}`;
    await worker.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'));
    const deadline = Date.now() + 10_000;
    while (runs(out).length < 2) {
      if (Date.now() > deadline) throw new Error("the cron did not run twice");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const stats = (await (await fetch(`${base}/api/stats`)).json()) as { crons: { name: string; runs: number }[] };
    expect(stats.crons).toHaveLength(1);
    expect(stats.crons[0]?.name).toBe("tick");
    expect(stats.crons[0]?.runs).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/wqueue_cron_runs_total\{cron="tick",outcome="ok"\} [1-9]/);
    const table = await runCli(["stats", base.replace("http://", ""), "--once"]);
    expect(table.stdout).toMatch(/tick: \d+ run\(s\)/);
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  });
});
