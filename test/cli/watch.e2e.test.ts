import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../../src/index.js";
import { waitFor } from "../helpers.js";
import { type RunningCli, startCli, tempDir, writeApp } from "./run-cli.js";


const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL"); // its worker drains on the disconnect
});

/** A handler module that records each message it handled as { id, v } in `out`, taking a while. */
function handlerSource(out: string, version: number): string {
  return `import { appendFileSync } from "node:fs";
export async function handle(message: { body: { id: number } }) {
  await new Promise((resolve) => setTimeout(resolve, 25));
  appendFileSync(${JSON.stringify(out)}, JSON.stringify({ id: message.body.id, v: ${version} }) + "\\n");
}
`;
}

function handled(out: string): { id: number; v: number }[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

/**
 * A project folder (app.ts importing handler.ts, version 1) with its SQLite broker and output file
 * outside it, and `wqueue worker --watch` running on it, ready.
 */
async function startWatching() {
  const dir = tempDir();
  const project = path.join(dir, "project");
  mkdirSync(project);
  const broker = `sqlite://${path.join(dir, "q.db")}`;
  const out = path.join(dir, "handled.jsonl");
  const handlerFile = path.join(project, "handler.ts");
  writeFileSync(handlerFile, handlerSource(out, 1));
  const app = writeApp(project, "app.ts", `import { handle } from "./handler.js";\nexport const app = new WQueue();\napp.listenEvents("jobs", handle, { concurrency: 4 });`);
  const cli = startCli(["worker", "-a", app, "--broker", broker, "--watch"]);
  running.push(cli);
  await cli.waitForLine("the ready line", (l) => l.includes('"msg":"ready:'), 20_000);
  return { broker, out, handlerFile, cli };
}

describe("wqueue worker --watch", () => {
  it("restarts on a change of an imported module, draining first: the new handler takes the next messages, none lost or doubled", async () => {
    const { broker, out, handlerFile, cli } = await startWatching();

    const producer = new WQueue({ broker });
    try {
      for (let id = 0; id < 40; id++) await producer.publish("jobs", { id });
      await waitFor("some messages handled by the first handler", () => handled(out).length >= 4, 10_000);
      writeFileSync(handlerFile, handlerSource(out, 2));
      const reload = await cli.waitForLine("the reload line", (l) => l.includes("watch: handler.ts changed"), 20_000);
      expect(reload).toMatch(/drained the worker \(exit 0\)/);
      for (let id = 40; id < 60; id++) await producer.publish("jobs", { id });
      await waitFor("all 60 messages handled", () => handled(out).length >= 60, 30_000);
    } finally {
      await producer.close();
    }

    const lines = handled(out);
    expect(lines).toHaveLength(60); // none doubled
    expect(new Set(lines.map((l) => l.id)).size).toBe(60); // none lost
    expect(lines.filter((l) => l.id >= 40).every((l) => l.v === 2)).toBe(true);
    expect(lines.some((l) => l.v === 1)).toBe(true);
    // The handled order shows one switch from v1 to v2: no old handler ran after the reload.
    const firstV2 = lines.findIndex((l) => l.v === 2);
    expect(lines.slice(firstV2).every((l) => l.v === 2)).toBe(true);
    expect(cli.stdout.filter((l) => l.includes("watch: ") && l.includes("changed"))).toHaveLength(1);

    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 90_000);

  it("a worker that fails on an edit (syntax error) restarts on the next change", async () => {
    const { broker, out, handlerFile, cli } = await startWatching();

    writeFileSync(handlerFile, "export function handle( {");
    await cli.waitForLine("the failed worker's line", (l) => l.includes("watch: the worker exited (2); it restarts on the next change"), 20_000);
    expect(cli.stderr.some((l) => l.includes("failed to load"))).toBe(true);
    writeFileSync(handlerFile, handlerSource(out, 3));
    await cli.waitForLine("the restart line", (l) => l.includes("watch: handler.ts changed; the worker was not running, restarted"), 20_000);
    const producer = new WQueue({ broker });
    try {
      await producer.publish("jobs", { id: 1 });
    } finally {
      await producer.close();
    }
    await waitFor("the message handled by the fixed handler", () => handled(out).length === 1, 20_000);
    expect(handled(out)).toEqual([{ id: 1, v: 3 }]);
    cli.child.kill("SIGINT");
    expect(await cli.exited).toBe(0);
  }, 90_000);
});
