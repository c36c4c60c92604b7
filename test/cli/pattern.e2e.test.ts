import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { waitFor } from "../helpers.js";
import { runCli, type RunningCli, startCli, tempDir, writeApp } from "./run-cli.js";

// Child processes start slowly on a loaded machine: waits are bounds for a hang, not for speed.
vi.setConfig({ testTimeout: 90_000 });
const WAIT_MS = 30_000;
const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
const isReady = (line: string) => line.includes('"msg":"ready:');

/** An app with one handler for `tenant.*` that appends `queue body` lines to out.txt. */
function patternApp(dir: string): { file: string; out: string } {
  const out = path.join(dir, "out.txt");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
export const app = new WQueue();
app.listenEvents("tenant.*", (message: { queue: string; body: unknown }) => {
  appendFileSync(${JSON.stringify(out)}, message.queue + " " + JSON.stringify(message.body) + "\\n");
}, { discoverMs: 200 });`,
  );
  return { file, out };
}

describe("wqueue worker with a queue pattern (child process)", () => {
  it("on worker threads, handles a queue pushed to after ready, message.queue naming it", async () => {
    const dir = tempDir();
    const broker = `sqlite://${path.join(dir, "q.db")}`;
    const { file, out } = patternApp(dir);
    const cli = startCli(["worker", "-a", file, "--broker", broker, "--threads", "2"]);
    running.push(cli);
    const ready = await cli.waitForLine("the ready line", isReady);
    expect(ready).toContain("threads (2)");
    expect(ready).toContain("queues: none yet; watching for new queues: tenant.* (every 200 ms)");
    expect((await runCli(["push", "other.acme", '{"n":0}', "--broker", broker])).code).toBe(0);
    expect((await runCli(["push", "tenant.acme", '{"n":1}', "--broker", broker])).code).toBe(0);
    await waitFor("the handler's output", () => lines(out).length === 1, WAIT_MS);
    expect(lines(out)).toEqual(['tenant.acme {"n":1}']);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("on a broker that cannot list its queues (MQTT), exits 2 with one line naming the broker, before connecting", async () => {
    const dir = tempDir();
    const { file } = patternApp(dir);
    // Nothing listens on port 1: the refusal comes before any connection attempt.
    const result = await runCli(["worker", "-a", file, "--broker", "mqtt://user:hunter2@127.0.0.1:1"]);
    expect(result.code).toBe(2);
    const errors = result.stderr.trim().split("\n");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('listenEvents("tenant.*"): the mqtt broker mqtt://user:');
    expect(errors[0]).toContain("@127.0.0.1:1 cannot list its queues");
    expect(errors[0]).not.toContain("hunter2");
  });
});
