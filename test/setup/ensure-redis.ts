import { spawnSync } from "node:child_process";
import { Redis } from "ioredis";

export const REDIS_URL = "redis://127.0.0.1:6379";
const START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no';

async function answers(): Promise<boolean> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * Makes sure the test Redis answers on 127.0.0.1:6379, starting a local redis-server when it does
 * not; fails with how to start it by hand when that is impossible (tests never skip silently).
 */
export async function ensureRedis(): Promise<void> {
  if (await answers()) return;
  const started = spawnSync("sh", ["-c", START], { encoding: "utf8" });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (await answers()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(
    `Redis does not answer on 127.0.0.1:6379 and could not be started (${started.stderr || started.error?.message || "no output"}). ` +
      `Start it with: ${START}`,
  );
}
