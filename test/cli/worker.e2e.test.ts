import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { waitFor } from "../helpers.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { type RunningCli, runCli, startCli, tempDir, writeApp } from "./run-cli.js";

// Child processes start slowly on a loaded machine: waits are bounds for a hang, not for speed.
vi.setConfig({ testTimeout: 90_000 });
const WAIT_MS = 30_000;
const redis = new Redis(REDIS_URL);
const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});
afterAll(() => redis.disconnect());

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
const isReady = (line: string) => line.includes('"msg":"ready:');

/** An app whose handler appends `queue body` lines to OUT, waiting `delayMs` first. */
function recordingApp(dir: string, queues: { queue: string; broker?: string }[], extra = "", delayMs = 0) {
  const out = path.join(dir, "out.txt");
  const started = path.join(dir, "started.txt");
  const listens = queues
    .map(({ queue, broker }) => `app.listenEvents(${JSON.stringify(queue)}, record, ${JSON.stringify(broker ? { broker } : {})});`)
    .join("\n");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
${extra}
async function record(message: { queue: string; body: unknown; attempt: number }) {
  appendFileSync(${JSON.stringify(started)}, message.queue + " " + JSON.stringify(message.body) + " " + message.attempt + "\\n");
  if (${delayMs} > 0) await new Promise((resolve) => setTimeout(resolve, ${delayMs}));
  appendFileSync(${JSON.stringify(out)}, message.queue + " " + JSON.stringify(message.body) + "\\n");
}
${listens}`,
  );
  return { file, out, started };
}

describe("wqueue worker (child process)", () => {
  it("handles a plain redis-cli RPUSH, logs one ready line, and exits 0 on SIGTERM", async () => {
    const dir = tempDir();
    const queue = `e2e.${randomUUID().slice(0, 8)}`;
    const { file, out } = recordingApp(dir, [{ queue }], "export const app = new WQueue();");
    const cli = startCli(["worker", "-a", file, "--broker", REDIS_URL]);
    running.push(cli);
    const ready = await cli.waitForLine("the ready line", isReady);
    expect(ready).toContain(`${queue} @ redis://127.0.0.1:6379`);
    expect(ready).toContain("event-loop");
    expect(cli.stdout.filter(isReady)).toHaveLength(1);
    await redis.rpush(queue, '{"hello":1}');
    await waitFor("the handler's output", () => lines(out).length === 1, WAIT_MS);
    expect(lines(out)).toEqual([`${queue} {"hello":1}`]);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("SIGTERM during a slow handler lets it complete, then exits 0", async () => {
    const dir = tempDir();
    const broker = `sqlite://${path.join(dir, "q.db")}`;
    const { file, out, started } = recordingApp(dir, [{ queue: "slow" }], "export const app = new WQueue();", 1500);
    const cli = startCli(["worker", "-a", file, "--broker", broker]);
    running.push(cli);
    await cli.waitForLine("the ready line", isReady);
    expect((await runCli(["push", "slow", '{"n":1}', "--broker", broker])).code).toBe(0);
    await waitFor("the handler to start", () => lines(started).length === 1, WAIT_MS);
    expect(lines(out)).toEqual([]);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
    expect(lines(out)).toEqual(['slow {"n":1}']);
  });

  it("on SQLite, kill -9 mid-handler then a restart handles the message again", async () => {
    const dir = tempDir();
    const broker = `sqlite://${path.join(dir, "q.db")}?visibility=1000`;
    const { file, out, started } = recordingApp(dir, [{ queue: "crashy" }], "export const app = new WQueue();", 60_000);
    const first = startCli(["worker", "-a", file, "--broker", broker]);
    running.push(first);
    await first.waitForLine("the ready line", isReady);
    expect((await runCli(["push", "crashy", '{"id":7}', "--broker", broker])).code).toBe(0);
    await waitFor("the first attempt to start", () => lines(started).length === 1, WAIT_MS);
    first.child.kill("SIGKILL");
    await first.exited;
    const fastApp = recordingApp(path.join(dir), [{ queue: "crashy" }], "export const app = new WQueue();", 0);
    const second = startCli(["worker", "-a", fastApp.file, "--broker", broker]);
    running.push(second);
    await waitFor("the message to be handled after the restart", () => lines(out).length === 1, WAIT_MS);
    expect(lines(out)).toEqual(['crashy {"id":7}']);
    expect(lines(started)).toEqual(['crashy {"id":7} 1', 'crashy {"id":7} 2']);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  it("listens on a Redis queue and an SQLite queue at once", async () => {
    const dir = tempDir();
    const queue = `mixed.${randomUUID().slice(0, 8)}`;
    const sqlite = `sqlite://${path.join(dir, "q.db")}`;
    const { file, out } = recordingApp(
      dir,
      [{ queue }, { queue: "local", broker: "local" }],
      `export const app = new WQueue({ brokers: { local: ${JSON.stringify(sqlite)} } });`,
    );
    const cli = startCli(["worker", "-a", file, "--broker", REDIS_URL]);
    running.push(cli);
    const ready = await cli.waitForLine("the ready line", isReady);
    expect(ready).toContain(`${queue} @ redis://127.0.0.1:6379`);
    expect(ready).toContain(`local @ sqlite://`);
    await redis.rpush(queue, '"from redis"');
    expect((await runCli(["push", "local", '"from sqlite"', "--broker", sqlite])).code).toBe(0);
    await waitFor("both messages", () => lines(out).length === 2, WAIT_MS);
    expect(lines(out).sort()).toEqual([`${queue} "from redis"`, 'local "from sqlite"'].sort());
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("keeps running after a non-JSON payload, which it dead-letters with the reason", async () => {
    const dir = tempDir();
    const queue = `bad.${randomUUID().slice(0, 8)}`;
    const { file, out } = recordingApp(dir, [{ queue }], "export const app = new WQueue();");
    const cli = startCli(["worker", "-a", file, "--broker", REDIS_URL]);
    running.push(cli);
    await cli.waitForLine("the ready line", isReady);
    await redis.rpush(queue, "this is not json", '{"ok":1}');
    await waitFor("the good message", () => lines(out).length === 1, WAIT_MS);
    expect(lines(out)).toEqual([`${queue} {"ok":1}`]);
    const dead = await cli.waitForLine("the dead-letter log line", (l) => l.includes("dead-lettered (undecodable)"));
    expect(JSON.parse(dead)).toMatchObject({ queue, attempt: 1, reason: "undecodable" });
    expect(await redis.llen(`${queue}.dead`)).toBe(1);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
    await redis.del(`${queue}.dead`);
  });
});

describe("wqueue CLI errors: one line, non-zero exit, no stack", () => {
  const expectOneLine = (result: { code: number | null; stderr: string }, pattern: RegExp) => {
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(pattern);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).not.toMatch(/ {4}at /);
  };

  it("a missing module", async () => {
    expectOneLine(await runCli(["worker", "-a", "./no/such/app.ts"]), /^wqueue: cannot find app module "\.\/no\/such\/app\.ts"/);
  });

  it("a module that registers nothing", async () => {
    const file = writeApp(tempDir(), "empty.ts", "export const app = new WQueue();");
    expectOneLine(await runCli(["worker", "-a", file, "--broker", "memory://x"]), /registers no handlers/);
  });

  it("a module without an app", async () => {
    const file = writeApp(tempDir(), "none.ts", "export const notAnApp = 1;");
    expectOneLine(await runCli(["worker", "-a", file]), /exports no WQueue app/);
  });

  it("an unknown broker scheme", async () => {
    const file = writeApp(tempDir(), "one.ts", 'export const app = new WQueue(); app.listenEvents("q", () => {});');
    expectOneLine(await runCli(["worker", "-a", file, "--broker", "foo://x"]), /unknown scheme "foo"/);
  });

  it("an unreachable broker, with the password redacted", async () => {
    const file = writeApp(tempDir(), "one.ts", 'export const app = new WQueue(); app.listenEvents("q", () => {});');
    const result = await runCli(["worker", "-a", file, "--broker", "redis://:hunter2@127.0.0.1:1"]);
    expectOneLine(result, /redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
    expect(result.stderr).not.toContain("hunter2");
  });

  it("shows the stack with --log-level debug", async () => {
    const result = await runCli(["worker", "-a", "./no/such/app.ts", "--log-level", "debug"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/ {4}at /);
  });
});

describe("wqueue push", () => {
  it("publishes one message, or one per stdin line, and refuses non-JSON without --raw", async () => {
    const dir = tempDir();
    const broker = `sqlite://${path.join(dir, "q.db")}`;
    expect((await runCli(["push", "p", '{"a":1}', "--broker", broker, "--key", "k1", "-H", "x-h=v"])).code).toBe(0);
    expect((await runCli(["push", "p", "--broker", broker], { input: '{"b":2}\n\n3\n' })).code).toBe(0);
    const refused = await runCli(["push", "p", "nope", "--broker", broker]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/the message is not JSON .*use --raw/);
    expect((await runCli(["push", "p", "plain text", "--raw", "--broker", broker])).code).toBe(0);

    const { file, out } = recordingApp(dir, [{ queue: "p" }], "export const app = new WQueue();");
    const appText = readFileSync(file, "utf8").replace('app.listenEvents("p", record, {});', 'app.listenEvents("p", record, { decode: "text" });');
    const textApp = writeApp(dir, "text-app.ts", appText.split("\n").slice(1).join("\n"));
    const cli = startCli(["worker", "-a", textApp, "--broker", broker, "--concurrency", "1"]);
    running.push(cli);
    await waitFor("all four messages", () => lines(out).length === 4, WAIT_MS);
    expect(lines(out)).toEqual(['p "{\\"a\\":1}"', 'p "{\\"b\\":2}"', 'p "3"', 'p "plain text"']);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });
});
