import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type PrivateRedis, startPrivateRedis } from "../brokers/redis-private-server.js";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

/**
 * The delivery promise end to end: a real `wqueue worker` child process on the reliable Redis queue
 * of a private redis-server (never the shared one), killed with SIGKILL at random moments, and the
 * Redis server itself killed and restarted. Every message must be handled at least once.
 */
const running: RunningCli[] = [];
const servers: PrivateRedis[] = [];
afterEach(async () => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

/** An app whose handler takes about 1 ms and appends each message's id to a file once it is done. */
function recordingApp(dir: string): { file: string; out: string } {
  const out = path.join(dir, "handled.txt");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 50, baseDelayMs: 10, maxDelayMs: 100 } });
app.listenEvents("work", async (m: { body: { id: number } }) => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  appendFileSync(${JSON.stringify(out)}, m.body.id + "\\n");
});`,
  );
  return { file, out };
}

const handledIds = (out: string) => (existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean).map(Number) : []);

async function pushIds(server: PrivateRedis, count: number): Promise<void> {
  const client = server.client();
  for (let start = 0; start < count; start += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - start) }, (_, i) => JSON.stringify({ id: start + i }));
    await client.rpush("work", ...batch);
  }
}

function summary(ids: number[], count: number) {
  const seen = new Set(ids);
  const lost = Array.from({ length: count }, (_, i) => i).filter((id) => !seen.has(id));
  return { handled: ids.length, unique: seen.size, duplicates: ids.length - seen.size, lost: lost.length };
}

describe("nothing lost (reliable Redis, worker child processes)", () => {
  it("5,000 messages, the worker killed with SIGKILL 5 times at random moments and restarted", async () => {
    const server = await startPrivateRedis();
    servers.push(server);
    const dir = tempDir();
    const { file, out } = recordingApp(dir);
    const broker = `${server.url}?heartbeatTtl=1000`;
    const count = 5000;
    await pushIds(server, count);
    const start = () => {
      const cli = startCli(["worker", "-a", file, "--broker", broker, "--concurrency", "20"]);
      running.push(cli);
      return cli;
    };
    let kills = 0;
    while (kills < 5) {
      const cli = start();
      const before = handledIds(out).length;
      // Let it make progress, then kill it at a random point.
      const target = before + 200 + Math.floor(Math.random() * 500);
      await waitFor(() => `progress past ${target} (at ${handledIds(out).length})`, () => handledIds(out).length >= target || new Set(handledIds(out)).size >= count, 30_000);
      cli.child.kill("SIGKILL");
      await cli.exited;
      kills += 1;
    }
    const last = start();
    await waitFor(() => `every id (${JSON.stringify(summary(handledIds(out), count))})`, () => new Set(handledIds(out)).size === count, 60_000);
    last.child.kill("SIGTERM");
    expect(await last.exited).toBe(0);
    const result = summary(handledIds(out), count);
    console.log(`kill test: ${count} messages, ${kills} SIGKILLs: ${JSON.stringify(result)}`);
    expect(result.lost).toBe(0);
    expect(await server.client().llen("work")).toBe(0);
  }, 180_000);

  it("10,000 messages, the Redis server killed and restarted twice (AOF): the worker resumes by itself", async () => {
    const server = await startPrivateRedis({ persistent: true });
    servers.push(server);
    const dir = tempDir();
    const { file, out } = recordingApp(dir);
    const count = 10_000;
    await pushIds(server, count);
    const cli = startCli(["worker", "-a", file, "--broker", `${server.url}?heartbeatTtl=2000`, "--concurrency", "50"]);
    running.push(cli);
    for (const fraction of [0.25, 0.6]) {
      await waitFor(() => `${fraction * count} handled`, () => handledIds(out).length >= fraction * count, 60_000);
      await server.restart();
    }
    await waitFor(() => `every id (${JSON.stringify(summary(handledIds(out), count))})`, () => new Set(handledIds(out)).size === count, 90_000);
    const result = summary(handledIds(out), count);
    console.log(`restart test: ${count} messages, 2 Redis restarts: ${JSON.stringify(result)}`);
    expect(result.lost).toBe(0);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 240_000);
});
