import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/**
 * A redis-server of the test's own, on a free port, for tests that kill, restart or count the
 * commands of their Redis: never the shared one on 6379, which other test files use concurrently.
 * `persistent` turns on the append-only file with an fsync per write (`--appendfsync always`), so a
 * write Redis acknowledged survives a SIGKILL; `password` makes it require one (`--requirepass`). A missing redis-server binary fails the test with
 * how to install one (tests never skip).
 */
export interface PrivateRedis {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** SIGKILL, then start again on the same port and data directory; resolves once it answers PING. */
  restart(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Kills the server and removes its data directory. */
  stop(): Promise<void>;
  /** A plain client for arranging and inspecting; disconnected by stop(). */
  client(): Redis;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function answers(port: number, password: string | undefined): Promise<boolean> {
  const probe = new Redis(port, "127.0.0.1", { password, lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on("error", () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

export async function startPrivateRedis(options: { persistent?: boolean; password?: string } = {}): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "wqueue-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir];
  args.push(...(options.persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]));
  if (options.password !== undefined) args.push("--requirepass", options.password);
  let child: ChildProcess | undefined;
  const clients: Redis[] = [];

  const start = async () => {
    let failure: Error | undefined;
    const started = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    started.stdout?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-2000);
    });
    started.on("error", (error) => {
      failure = new Error(`cannot start redis-server (${error.message}); these tests need Redis 7 installed (apt-get install redis-server)`);
    });
    child = started;
    const deadline = Date.now() + 10_000;
    while (!(await answers(port, options.password))) {
      if (failure) throw failure;
      if (started.exitCode !== null) throw new Error(`redis-server on port ${port} exited (${started.exitCode}): ${output}`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within 10 s: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    kill,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      for (const client of clients.splice(0)) client.disconnect();
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    client: () => {
      const client = new Redis(port, "127.0.0.1", { password: options.password, maxRetriesPerRequest: 3 });
      client.on("error", () => {});
      clients.push(client);
      return client;
    },
  };
}
