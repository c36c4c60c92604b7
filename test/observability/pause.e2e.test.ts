import { rmSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningCli, runCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

interface Stats {
  processes: number;
  queues: { queue: string; received: number; succeeded: number; backlog: number | null; paused: boolean }[];
}

const running: RunningCli[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A worker on a private SQLite file, listening on "orders"; `processes` > 1 runs a supervisor. */
async function start(processes: number, dir = tempDir()) {
  if (!dirs.includes(dir)) dirs.push(dir);
  const broker = `sqlite://${path.join(dir, "q.db")}`;
  const app = writeApp(dir, "app.ts", `export const app = new WQueue();\napp.listenEvents("orders", () => {});`);
  const extra = processes > 1 ? ["--processes", String(processes)] : [];
  const cli = startCli(["worker", "-a", app, "--broker", broker, "--http", "127.0.0.1:0", ...extra]);
  running.push(cli);
  const base = `http://${JSON.parse(await cli.waitForLine("the http line", (l) => l.includes('"msg":"http: '), 20_000)).http}`;
  await waitFor(`${processes} ready line(s)`, () => cli.stdout.filter((l) => l.includes('"msg":"ready:')).length === processes, 30_000);
  const stats = async () => (await (await fetch(`${base}/api/stats`)).json()) as Stats;
  const orders = async () => (await stats()).queues.find((q) => q.queue === "orders");
  const post = (route: string, headers: Record<string, string> = { "x-wqueue-request": "1" }) => fetch(`${base}${route}`, { method: "POST", headers });
  return { cli, dir, broker, base, stats, orders, post };
}

/**
 * Pauses "orders", publishes, and checks that nothing is taken while the broker still counts every
 * message waiting (polled many times over, each a round trip through the worker), then resumes.
 */
async function pausePublishResume(worker: Awaited<ReturnType<typeof start>>, processes: number) {
  const paused = await worker.post("/api/queues/pause?queue=orders");
  expect(paused.status).toBe(200);
  expect(await paused.json()).toMatchObject({ queue: "orders", paused: true, subscriptions: processes, processes, problems: [] });
  await waitFor("orders to show as paused", async () => (await worker.orders())?.paused === true, 10_000);

  const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ i })).join("\n");
  expect((await runCli(["push", "orders", "--broker", worker.broker], { input: lines })).code).toBe(0);
  let last = await worker.orders();
  await waitFor(() => `a backlog of 20 (last: ${JSON.stringify(last)})`, async () => {
    last = await worker.orders();
    return last?.backlog === 20;
  }, 10_000);
  for (let poll = 0; poll < 30; poll++) {
    last = await worker.orders();
    expect(last).toMatchObject({ received: 0, succeeded: 0, backlog: 20, paused: true });
  }
  const stats = await runCli(["stats", worker.base.replace("http://", ""), "--once"]);
  expect(stats.stdout).toMatch(/^orders \(paused\)\s/m);

  const resumed = await worker.post("/api/queues/resume?queue=orders");
  expect(await resumed.json()).toMatchObject({ paused: false, processes });
  await waitFor(() => `all 20 handled (last: ${JSON.stringify(last)})`, async () => {
    last = await worker.orders();
    return last?.succeeded === 20 && last.backlog === 0 && !last.paused;
  }, 20_000);
  expect(last?.received).toBe(20);
}

describe("pausing a queue from the dashboard API", () => {
  it("stops fetching on a worker until resumed, losing nothing; refuses a request without the header", async () => {
    const worker = await start(1);
    expect((await worker.post("/api/queues/pause?queue=orders", {})).status).toBe(403);
    expect((await worker.post("/api/queues/pause?queue=orders", { "x-wqueue-request": "1", origin: "http://evil.example" })).status).toBe(403);
    expect((await worker.orders())?.paused).toBe(false);
    expect((await worker.post("/api/queues/pause?queue=nope")).status).toBe(404);
    await pausePublishResume(worker, 1);
    worker.cli.child.kill("SIGTERM");
    expect(await worker.cli.exited).toBe(0);
  }, 60_000);

  it("pauses every child of a --processes 2 tree", async () => {
    const worker = await start(2);
    await pausePublishResume(worker, 2);
    worker.cli.child.kill("SIGTERM");
    expect(await worker.cli.exited).toBe(0);
  }, 90_000);

  it("a child restarted while its tree is paused is paused too", async () => {
    const worker = await start(2);
    expect((await worker.post("/api/queues/pause?queue=orders")).status).toBe(200);
    type Child = { index: number; pid: number; ready: boolean; paused: string[] };
    const children = async () => ((await worker.stats()) as unknown as { children: Child[] }).children;
    const victim = (await children()).find((c) => c.index === 0) as Child;
    expect(victim.paused).toEqual(["orders"]);
    process.kill(victim.pid, "SIGKILL");
    let last: Child[] = [];
    await waitFor(() => `child 0 back and paused (last: ${JSON.stringify(last)})`, async () => {
      last = await children();
      const child = last.find((c) => c.index === 0);
      return child !== undefined && child.pid !== victim.pid && child.ready && child.paused.includes("orders");
    }, 30_000);
    const lines = Array.from({ length: 5 }, (_, i) => JSON.stringify({ i })).join("\n");
    expect((await runCli(["push", "orders", "--broker", worker.broker], { input: lines })).code).toBe(0);
    await waitFor("a backlog of 5", async () => (await worker.orders())?.backlog === 5, 10_000);
    for (let poll = 0; poll < 20; poll++) expect(await worker.orders()).toMatchObject({ received: 0, backlog: 5 });
    worker.cli.child.kill("SIGTERM");
    expect(await worker.cli.exited).toBe(0);
  }, 90_000);

  it("a worker stopped while paused exits 0 and leaves the messages in the queue", async () => {
    const worker = await start(1);
    expect((await worker.post("/api/queues/pause?queue=orders")).status).toBe(200);
    await waitFor("paused", async () => (await worker.orders())?.paused === true, 10_000);
    expect((await runCli(["push", "orders", '{"a":1}', "--broker", worker.broker])).code).toBe(0);
    await waitFor("a backlog of 1", async () => (await worker.orders())?.backlog === 1, 10_000);
    worker.cli.child.kill("SIGTERM");
    expect(await worker.cli.exited).toBe(0);
    const again = await start(1, worker.dir);
    await waitFor("the message handled by the next worker", async () => (await again.orders())?.succeeded === 1, 20_000);
  }, 60_000);
});
