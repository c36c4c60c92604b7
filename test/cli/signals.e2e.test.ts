import { existsSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { waitFor } from "../helpers.js";
import { type RunningCli, runCli, startCli, tempDir, writeApp } from "./run-cli.js";

const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

describe("wqueue worker signals", () => {
  it("a second SIGTERM forces the stop: the hanging message goes back to the broker and the exit code is 130", async () => {
    const dir = tempDir();
    // The SQLite visibility (30 s by default) outlasts the test: only a give-back makes the message visible again.
    const broker = `sqlite://${path.join(dir, "q.db")}`;
    const started = path.join(dir, "started");
    const app = writeApp(
      dir,
      "app.ts",
      `import { writeFileSync } from "node:fs";
export const app = new WQueue();
app.listenEvents("hang", () => { writeFileSync(${JSON.stringify(started)}, "x"); return new Promise(() => {}); });`,
    );
    const cli = startCli(["worker", "-a", app, "--broker", broker, "--shutdown-grace", "60000"]);
    running.push(cli);
    await cli.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'));
    expect((await runCli(["push", "hang", '{"n":1}', "--broker", broker])).code).toBe(0);
    await waitFor("the handler to start", () => existsSync(started), 10_000);

    cli.child.kill("SIGTERM");
    await cli.waitForLine("the draining line", (l) => l.includes("draining"));
    await cli.waitForLine("the wait for the in-flight message", (l) => l.includes("waiting for 1 in-flight"));
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(130);
    expect(cli.stdout.some((l) => l.includes("giving unfinished messages back"))).toBe(true);

    const sqlite = new SqliteBroker(broker);
    try {
      expect(await sqlite.backlog("hang")).toBe(1);
    } finally {
      await sqlite.close();
    }
  });
});
