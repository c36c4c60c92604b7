import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { Redis } from "ioredis";
import type { Consumer, Delivery } from "../../src/brokers/contract.js";

export const text = (value: string) => new TextEncoder().encode(value);
export const read = (delivery: Delivery) => Buffer.from(delivery.body).toString();

/** Polls `condition` until it holds, failing after `timeoutMs`. */
export async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Receives until `count` deliveries came, failing after `timeoutMs`. */
export async function receiveN(consumer: Consumer, count: number, timeoutMs = 5000, max = count): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(Math.min(max, count - got.length), signal)));
  if (got.length < count) throw new Error(`received ${got.length} of ${count} messages within ${timeoutMs} ms`);
  return got;
}

/**
 * Reads `consumer` as a busy worker would: batches of 10, 5 ms of handler work per batch, each
 * batch acked, until `count` bodies starting with `prefix` came (or `timeoutMs` passed). Returns
 * every body read, in order.
 */
export async function readBusyUntil(consumer: Consumer, prefix: string, count: number, timeoutMs = 30_000): Promise<string[]> {
  const bodies: string[] = [];
  const signal = AbortSignal.timeout(timeoutMs);
  while (bodies.filter((body) => body.startsWith(prefix)).length < count && !signal.aborted) {
    const batch = await consumer.receive(10, signal);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await Promise.all(batch.map((delivery) => delivery.ack()));
    bodies.push(...batch.map(read));
  }
  return bodies;
}

/**
 * ./redis-child.ts `hold`: a process that receives `count` messages and holds them until killed;
 * `ack-exit`: one that acks them and calls process.exit(1) in the same turn.
 */
export function holdingChild(
  url: string,
  queue: string,
  count: number,
  mode: "hold" | "ack-exit" = "hold",
): { child: ChildProcess; lines: () => { id: string; attempt: number; body: string }[] } {
  const script = fileURLToPath(new URL("./redis-child.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script, mode, url, queue, String(count)], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  const lines = () => out.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
  return { child, lines };
}

export async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/**
 * Counts the commands clients send to a (private) Redis, by name, with MONITOR: commands a Lua
 * script runs inside Redis are left out, so the count is round trips' worth of commands. `commands`
 * keeps each one's arguments, in the order Redis ran them. MONITOR's stream lags behind Redis:
 * `caughtUp()` resolves once every command Redis ran before it was called has been seen.
 */
export async function countCommands(
  monitorOn: Redis,
): Promise<{ counts: Map<string, number>; commands: string[][]; total(): number; caughtUp(): Promise<void>; stop(): void }> {
  const counts = new Map<string, number>();
  const commands: string[][] = [];
  const markers = new Set<string>();
  const monitor = await monitorOn.monitor();
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    if (source === "lua") return;
    const name = String(args[0]).toLowerCase();
    // The marker of caughtUp(): seen, so everything Redis ran before it was seen too. Not counted.
    if (name === "echo" && markers.delete(String(args[1]))) return;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    commands.push([name, ...args.slice(1).map(String)]);
  });
  return {
    counts,
    commands,
    total: () => [...counts.values()].reduce((sum, n) => sum + n, 0),
    async caughtUp() {
      const marker = `wqueue-monitor-marker-${randomUUID()}`;
      markers.add(marker);
      await monitorOn.echo(marker);
      await waitFor("MONITOR to show the commands run so far", () => !markers.has(marker), 10_000);
    },
    stop: () => monitor.disconnect(),
  };
}

/** Deletes every key whose name starts with `prefix` (a test's own queues and wqueue's keys beside them). */
export async function deleteKeysStartingWith(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}
