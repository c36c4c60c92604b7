import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningCli, runCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

describe("wqueue worker --processes 2 --http, with a queue on threads and one on the event loop", () => {
  it("serves one endpoint whose counts add up the children, and stops them all with exit 0", async () => {
    const dir = tempDir();
    const broker = `sqlite://${path.join(dir, "q.db")}`;
    const app = writeApp(
      dir,
      "app.ts",
      `export const app = new WQueue({ threads: 1 });
app.listenEvents("io", async () => { await new Promise((r) => setTimeout(r, 5)); });
app.listenEvents("cpu", () => { let x = 0; for (let i = 0; i < 1e5; i++) x += i; return x; }, { model: "threads" });`,
    );
    const cli = startCli(["worker", "-a", app, "--broker", broker, "--processes", "2", "--http", "127.0.0.1:0"]);
    running.push(cli);
    const httpLine = await cli.waitForLine("the http line", (l) => l.includes('"msg":"http: '), 20_000);
    const base = `http://${JSON.parse(httpLine).http}`;
    await waitFor("both children's ready lines", () => cli.stdout.filter((l) => l.includes('"msg":"ready:')).length === 2, 30_000);
    const ready = cli.stdout.filter((l) => l.includes('"msg":"ready:')).map((l) => JSON.parse(l));
    expect(ready.map((r) => r.child).sort()).toEqual([0, 1]);
    expect(ready[0].model).toBe("event-loop + threads (1)");

    const lines = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ i })).join("\n");
    expect((await runCli(["push", "io", "--broker", broker], { input: lines(30) })).code).toBe(0);
    expect((await runCli(["push", "cpu", "--broker", broker], { input: lines(10) })).code).toBe(0);

    let stats: { processes: number; queues: { queue: string; succeeded: number }[] } = { processes: 0, queues: [] };
    await waitFor(
      () => `all 40 messages in /api/stats (last: ${JSON.stringify(stats.queues)})`,
      async () => {
        stats = (await (await fetch(`${base}/api/stats`)).json()) as typeof stats;
        const done = (queue: string) => stats.queues.find((q) => q.queue === queue)?.succeeded;
        return done("io") === 30 && done("cpu") === 10;
      },
      30_000,
    );
    expect(stats.processes).toBe(2);
    // Each child listed: its own pid (not the supervisor's), ready, and its share of the work.
    const children = (stats as unknown as { children: { index: number; pid: number; ready: boolean; received: number }[] }).children;
    expect(children.map((c) => c.index).sort()).toEqual([0, 1]);
    expect(children.every((c) => c.ready && c.pid !== cli.child.pid)).toBe(true);
    expect(new Set(children.map((c) => c.pid)).size).toBe(2);
    expect(children.reduce((sum, c) => sum + c.received, 0)).toBe(40);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^wqueue_messages_succeeded_total\{queue="io",[^}]*\} 30$/m);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 90_000);
});
