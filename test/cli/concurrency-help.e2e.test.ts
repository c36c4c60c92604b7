import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningCli, runCli, startCli, tempDir, writeApp } from "./run-cli.js";

const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

describe("wqueue worker --concurrency: --help tells how the default follows the model", () => {
  it("--threads 2 with two queues runs at concurrency 4, the threads plus one per queue, as --help says", async () => {
    const help = await runCli(["worker", "--help"]);
    expect(help.stdout.replace(/\s+/g, " ")).toContain("on threads at most the threads plus one per queue");

    const dir = tempDir();
    const app = writeApp(dir, "app.ts", 'export const app = new WQueue();\napp.listenEvents("a", () => {});\napp.listenEvents("b", () => {});');
    const cli = startCli(["worker", "-a", app, "--broker", `sqlite://${path.join(dir, "q.db")}`, "--threads", "2"]);
    running.push(cli);
    const ready = JSON.parse(await cli.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'), 20_000));
    expect(ready.concurrency).toBe(2 + 2);
    cli.child.kill("SIGTERM");
    // Right after the ready line: the signal handlers are in place before the worker starts.
    expect(await cli.exited).toBe(0);
  });
});
