import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/**
 * A Redis Cluster of the test's own on loopback: 3 masters and (by default) 3 replicas from Debian's
 * redis-server (`--cluster-enabled yes`), joined by `redis-cli --cluster create --cluster-replicas 1`,
 * or the same from Valkey (`server: "valkey"`: valkey-server and valkey-cli, Debian 12's backports),
 * with `cluster-node-timeout` 1000 ms so a killed master's replica takes over within seconds. Each
 * node keeps its files in a directory of a tmp dir that stop() removes. A missing redis-server or
 * redis-cli fails the test with how to install them (tests never skip).
 */
export interface PrivateRedisCluster {
  /** Every node's port, masters first as created. */
  readonly ports: number[];
  /** `redis://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>`: the seeds, without parameters. */
  readonly seeds: string;
  /** A plain client to one node (READONLY on a replica), for inspecting; disconnected by stop(). */
  node(port: number): Redis;
  /** The port of the master that serves `key`'s slot now, and of its replicas. */
  ownerOf(key: string): Promise<{ master: number; replicas: number[] }>;
  /** SIGKILL one node. */
  kill(port: number): Promise<void>;
  /** SIGSTOP / SIGCONT one node (a replica that stops acknowledging). */
  pause(port: number): void;
  resume(port: number): void;
  /** Resolves once every slot is served by a live master (after a failover) and every live replica is in sync, within `ms`. */
  healthy(ms?: number): Promise<void>;
  /** Kills every node and removes the data directory. */
  stop(): Promise<void>;
}

const NODE_TIMEOUT_MS = 1000;

async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive ports whose cluster-bus ports (+10000) are free as well. */
async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 20_000 + Math.floor(Math.random() * 9_000);
    const ports = Array.from({ length: count }, (_, offset) => base + offset);
    const all = [...ports, ...ports.map((port) => port + 10_000)];
    if ((await Promise.all(all.map(isFree))).every(Boolean)) return ports;
  }
  throw new Error("no free ports (and their +10000 bus ports) found for a private Redis Cluster");
}

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`private Redis Cluster: ${what} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** How to install each server's binaries, for the error a missing one gives. */
const INSTALL = {
  redis: "these tests need Redis 7: apt-get install redis-server redis-tools",
  valkey: "these tests need Valkey 8: on Debian 12, add bookworm-backports and apt-get install -t bookworm-backports valkey-server (.ci/run does)",
};

/** `replicas`: per master (1 by default; 0 for a bench that wants the 3 masters alone). `server`: whose binaries. */
export async function startPrivateRedisCluster({ replicas = 1, server = "redis" }: { replicas?: number; server?: "redis" | "valkey" } = {}): Promise<PrivateRedisCluster> {
  const cliName = `${server}-cli`;
  const serverName = `${server}-server`;
  const cli = spawnSync(cliName, ["--version"], { encoding: "utf8" });
  if (cli.error) throw new Error(`${cliName} not found (${cli.error.message}); ${INSTALL[server]}`);
  const ports = await freePorts(3 * (1 + replicas));
  const dir = mkdtempSync(join(tmpdir(), "wqueue-redis-cluster-"));
  const children = new Map<number, ChildProcess>();
  const clients: Redis[] = [];
  const node = (port: number) => {
    const client = new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 1, retryStrategy: () => 200 });
    client.on("error", () => {});
    clients.push(client);
    return client;
  };
  const kill = async (port: number) => {
    const child = children.get(port);
    children.delete(port);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  };
  const stop = async () => {
    for (const client of clients.splice(0)) client.disconnect();
    for (const port of [...children.keys()]) await kill(port);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (const port of ports) {
      const own = join(dir, String(port));
      mkdirSync(own);
      const child = spawn(
        serverName,
        ["--port", String(port), "--bind", "127.0.0.1", "--dir", own, "--save", "", "--appendonly", "no",
          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
          "--cluster-replica-validity-factor", "0"],
        { stdio: "ignore" },
      );
      let failure: Error | undefined;
      child.on("error", (error) => {
        failure = new Error(`cannot start ${serverName} (${error.message}); ${INSTALL[server]}`);
      });
      children.set(port, child);
      await until(`node ${port} answering PING`, 10_000, async () => {
        if (failure) throw failure;
        const probe = new Redis(port, "127.0.0.1", { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
        probe.on("error", () => {});
        try {
          await probe.connect();
          return (await probe.ping()) === "PONG";
        } finally {
          probe.disconnect();
        }
      }).catch((error) => {
        throw failure ?? error;
      });
    }
    const created = spawnSync(
      cliName,
      ["--cluster", "create", ...ports.map((port) => `127.0.0.1:${port}`), "--cluster-replicas", String(replicas), "--cluster-yes"],
      { encoding: "utf8", timeout: 60_000 },
    );
    if (created.status !== 0) throw new Error(`${cliName} --cluster create failed: ${created.stdout}${created.stderr}`);
  } catch (error) {
    await stop();
    throw error;
  }

  const probes = new Map(ports.map((port) => [port, node(port)]));
  const healthy = async (ms = 20_000) => {
    await until("every slot served by a live master, every replica linked", ms, async () => {
      for (const port of children.keys()) {
        const info = String(await (probes.get(port) as Redis).cluster("INFO"));
        if (!info.includes("cluster_state:ok")) return false;
        const slots = await (probes.get(port) as Redis).cluster("SLOTS");
        const covered = slots.reduce((sum, [from, to]) => sum + (to - from + 1), 0);
        if (covered !== 16384 || slots.some(([, , master]) => !master || !children.has(master[1]))) return false;
        const replication = await (probes.get(port) as Redis).info("replication");
        if (replication.includes("role:slave") && !replication.includes("master_link_status:up")) return false;
      }
      return true;
    });
  };
  await healthy(30_000);

  return {
    ports,
    seeds: `redis://${ports.slice(0, 3).map((port) => `127.0.0.1:${port}`).join(",")}`,
    node: (port) => {
      const client = node(port);
      void client.readonly().catch(() => {});
      return client;
    },
    ownerOf: async (key) => {
      const live = [...children.keys()][0] as number;
      const probe = probes.get(live) as Redis;
      const slot = Number(await probe.cluster("KEYSLOT", key));
      const range = (await probe.cluster("SLOTS")).find(([from, to]) => slot >= from && slot <= to);
      const master = range?.[2]?.[1];
      if (master === undefined) throw new Error(`no node serves slot ${slot} of ${key}`);
      // The master's own word on its replicas (CLUSTER SLOTS of another node may lag behind).
      const replication = await (probes.get(master) as Redis).info("replication");
      const replicas = [...replication.matchAll(/^slave\d+:.*port=(\d+)/gm)].map((found) => Number(found[1]));
      return { master, replicas };
    },
    kill,
    pause: (port) => children.get(port)?.kill("SIGSTOP"),
    resume: (port) => children.get(port)?.kill("SIGCONT"),
    healthy,
    stop,
  };
}
