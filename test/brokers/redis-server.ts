import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { Redis } from "ioredis";
import { beforeAll, beforeEach } from "vitest";

/**
 * The Redis the integration tests use. A Redis that is not running fails every test with how to
 * start it: tests never skip. Each test uses its own queue names, so test files may share the
 * server and run in parallel; none of them stops or restarts it.
 */
export const REDIS_URL = process.env.WQUEUE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

const HOW_TO_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no';

/** A plain ioredis client for arranging and inspecting test data; quit it after use. */
export function rawRedis(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, retryStrategy: () => null });
}

/** Makes every test of the file fail, not skip, when Redis does not answer PING. */
export function requireRedis(): void {
  let unreachable: Error | undefined;
  beforeAll(async () => {
    const client = rawRedis();
    let cause: Error | undefined;
    client.on("error", (error: Error) => {
      cause ??= error;
    });
    try {
      await client.connect();
      await client.ping();
    } catch (error) {
      unreachable = new Error(
        `Redis is not reachable at ${REDIS_URL} (${(cause ?? (error as Error)).message}). ` +
          `These tests need a real Redis 7; start one with:\n  ${HOW_TO_START}`,
      );
    } finally {
      client.disconnect();
    }
  });
  beforeEach(() => {
    if (unreachable) throw unreachable;
  });
}

/**
 * A TCP proxy to the test Redis whose current connections can be frozen: no byte passes either
 * way and nothing closes, as on a dead network link. Connections opened after freeze() pass.
 */
export async function freezableProxy(): Promise<{ url: string; freeze(): void; close(): void }> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  const frozen = new WeakSet<Socket>();
  const server = createServer((downstream) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const [from, to] of [
      [downstream, upstream],
      [upstream, downstream],
    ] as const) {
      sockets.add(from);
      from.on("data", (data) => {
        if (!frozen.has(from)) to.write(data);
      });
      from.on("error", () => {});
      from.on("close", () => {
        sockets.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    freeze: () => {
      for (const socket of sockets) frozen.add(socket);
    },
    close: () => {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}
