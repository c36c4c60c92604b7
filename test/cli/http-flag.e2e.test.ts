import { createServer, type Server } from "node:net";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { type RunningCli, runCli, startCli, tempDir, writeApp } from "./run-cli.js";

const running: RunningCli[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
  for (const server of servers.splice(0)) server.close();
});

/** A loopback port something is listening on; `close` frees it for the test to hand out. */
async function listeningPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function sqliteApp() {
  const dir = tempDir();
  const broker = `sqlite://${path.join(dir, "q.db")}`;
  const app = writeApp(dir, "app.ts", 'export const app = new WQueue();\napp.listenEvents("jobs", () => {});');
  return { broker, app };
}

describe("wqueue worker --http ADDRESS", () => {
  it("takes a bare port, as --help says, and binds it on loopback", async () => {
    const { broker, app } = sqliteApp();
    const free = await listeningPort();
    await free.close();
    const cli = startCli(["worker", "-a", app, "--broker", broker, "--http", String(free.port)]);
    running.push(cli);
    const line = await cli.waitForLine("the http line", (l) => l.includes('"msg":"http: '));
    expect(JSON.parse(line).http).toBe(`127.0.0.1:${free.port}`);
    expect((await fetch(`http://127.0.0.1:${free.port}/healthz`)).status).toBe(200);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("refuses an address it cannot parse with one line, exit 2, before connecting", async () => {
    const { broker, app } = sqliteApp();
    for (const bad of ["99999", "host:", "127.0.0.1:80:80", "[::1]9464"]) {
      const result = await runCli(["worker", "-a", app, "--broker", broker, "--http", bad]);
      expect(result.code, bad).toBe(2);
      expect(result.stderr.trim().split("\n"), bad).toEqual([`wqueue: --http ${bad}: expected PORT or HOST:PORT, e.g. 127.0.0.1:9464`]);
      expect(result.stdout, bad).not.toContain("ready:");
    }
  });

  it("a port already taken fails before consuming: exit 2, one line, the waiting message stays on the broker", async () => {
    const { broker, app } = sqliteApp();
    expect((await runCli(["push", "jobs", '{"n":1}', "--broker", broker])).code).toBe(0);
    const taken = await listeningPort();
    const result = await runCli(["worker", "-a", app, "--broker", broker, "--http", `127.0.0.1:${taken.port}`]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toEqual([expect.stringMatching(new RegExp(`^wqueue: --http 127\\.0\\.0\\.1:${taken.port}: .*EADDRINUSE`))]);
    expect(result.stdout).not.toContain("ready:");
    const sqlite = new SqliteBroker(broker);
    try {
      expect(await sqlite.backlog("jobs")).toBe(1);
    } finally {
      await sqlite.close();
    }
  });
});
