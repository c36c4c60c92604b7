import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import type { Broker } from "../../src/brokers/contract.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { RedisCoordinationStore } from "../../src/coordination/RedisCoordinationStore.js";
import { Worker } from "../../src/worker/Worker.js";
import { memoryLogger, waitFor } from "../helpers.js";
import { type PrivateRedisCluster, startPrivateRedisCluster } from "./redis-private-cluster.js";

/**
 * Redis Cluster (`?cluster=true`) on a cluster of this file's own, 3 masters and 3 replicas on
 * loopback: a queue's keys live in its one slot and queues spread over the masters; `?wait=N`
 * returns only once a replica holds the write; a master killed with SIGKILL mid-stream is replaced
 * by its replica and the worker carries on by itself, reporting what the failover lost or doubled.
 */
let cluster: PrivateRedisCluster;
const workers: Worker[] = [];
const brokers: Broker[] = [];

beforeAll(async () => {
  cluster = await startPrivateRedisCluster();
}, 90_000);
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(5000)));
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});
afterAll(() => cluster?.stop());

const url = (params = "") => `${cluster.seeds}?cluster=true${params}`;

async function broker(params = ""): Promise<Broker> {
  const opened = openRedisBroker(url(params));
  brokers.push(opened);
  await opened.connect();
  return opened;
}

async function startWorker(queues: string[], handled: (queue: string, body: string) => void, params = "") {
  const app = new WQueue({ broker: url(params) });
  for (const queue of queues) app.listenEvents<string>(queue, (message) => handled(queue, message.body));
  const { logger, lines } = memoryLogger();
  const worker = new Worker(app, { logger, broker: url(params) });
  workers.push(worker);
  await worker.start();
  return { worker, lines };
}

/** Queue names, `count` per master at least, one name per distinct master first. */
async function queuesOnEveryMaster(label: string, total: number): Promise<{ queue: string; master: number }[]> {
  const prefix = `cluster-${label}-${randomUUID().slice(0, 8)}-`;
  const picked: { queue: string; master: number }[] = [];
  const masters = new Set<number>();
  for (let index = 0; picked.length < total; index += 1) {
    const queue = `${prefix}${index}`;
    const { master } = await cluster.ownerOf(queue);
    if (masters.size < 3 && masters.has(master)) continue; // every master gets one before any gets two
    masters.add(master);
    picked.push({ queue, master });
  }
  return picked;
}

/** A queue whose master has a replica now (an earlier failover may have left one master without). */
async function queueWithReplica(label: string): Promise<{ queue: string; master: number }> {
  for (let index = 0; ; index += 1) {
    const queue = `cluster-${label}-${randomUUID().slice(0, 8)}-${index}`;
    const { master, replicas } = await cluster.ownerOf(queue);
    if (replicas.length > 0) return { queue, master };
  }
}

describe("redis cluster", () => {
  it("spreads 4 queues over the 3 masters, each queue's keys in its own slot on its master", async () => {
    const queues = await queuesOnEveryMaster("spread", 4);
    expect(new Set(queues.map(({ master }) => master)).size).toBe(3);
    const handled = new Map<string, number>();
    await startWorker(
      queues.map(({ queue }) => queue),
      (queue) => handled.set(queue, (handled.get(queue) ?? 0) + 1),
    );
    const producer = await broker();
    for (const { queue } of queues) {
      await producer.publish(queue, Array.from({ length: 50 }, (_, n) => ({ body: new TextEncoder().encode(`"${queue}-${n}"`) })));
      await producer.publish(queue, [{ body: new TextEncoder().encode(`"${queue}-late"`), delayMs: 50 }]);
    }
    await waitFor("51 messages handled on each queue", () => queues.every(({ queue }) => handled.get(queue) === 51), 20_000);

    for (const { queue, master } of queues) {
      const owner = cluster.node(master);
      const slot = Number(await owner.cluster("KEYSLOT", queue));
      const keys = await owner.keys(`{${queue}}:wqueue:*`);
      // The id counter, the consumer registry and the consumer's heartbeat: all of the queue's slot, on its master.
      expect(keys).toEqual(expect.arrayContaining([`{${queue}}:wqueue:ids`, `{${queue}}:wqueue:consumers`]));
      expect(keys.some((key) => key.startsWith(`{${queue}}:wqueue:consumer:`))).toBe(true);
      for (const key of keys) expect(Number(await owner.cluster("KEYSLOT", key))).toBe(slot);
      for (const other of cluster.ports.slice(0, 3).filter((port) => port !== master)) {
        expect(await cluster.node(other).keys(`*${queue}*`)).toEqual([]);
      }
    }
  }, 60_000);

  it("?wait=1 returns from publish only once a replica holds the message, and fails when none acknowledges in time", async () => {
    const { queue } = (await queuesOnEveryMaster("wait", 1))[0] as { queue: string };
    const { replicas } = await cluster.ownerOf(queue);
    const replica = cluster.node(replicas[0] as number);
    const producer = await broker("&wait=1&waitTimeout=2000");
    for (let round = 1; round <= 20; round += 1) {
      await producer.publish(queue, [{ body: new TextEncoder().encode(`"m${round}"`) }]);
      // Read on the replica at once: WAIT made publish hold until the replica acknowledged.
      expect(await replica.llen(queue)).toBe(round);
    }

    const impatient = await broker("&wait=1&waitTimeout=200");
    cluster.pause(replicas[0] as number);
    try {
      await expect(impatient.publish(queue, [{ body: new TextEncoder().encode('"unreplicated"') }])).rejects.toThrow(
        /0 of 1 replica\(s\) acknowledged within 200 ms/,
      );
    } finally {
      cluster.resume(replicas[0] as number);
    }
    await waitFor("the unacknowledged message reaching the replica once it runs again", async () => (await replica.llen(queue)) === 21, 10_000);
  }, 30_000);

  for (const [mode, params] of [
    ["reliable", "&heartbeatTtl=3000"],
    ["stream", "&mode=stream&claimIdle=2000"],
  ] as const) {
    it(`mode=${mode}: a master killed mid-stream, its replica takes over and the worker carries on by itself`, async () => {
      const { queue, master } = await queueWithReplica(`failover-${mode}`);
      const seen = new Map<string, number>();
      const { lines } = await startWorker([queue], (_, body) => seen.set(body, (seen.get(body) ?? 0) + 1), params);
      const producer = await broker(params);
      const published: string[] = [];
      let retried = 0;
      let stop = false;
      const produce = (async () => {
        for (let n = 0; !stop && n < 100_000; n += 1) {
          const body = `m${n}`;
          // A publish that fails (the master gone, its replica not yet promoted) is retried, as a producer would.
          for (;;) {
            try {
              await producer.publish(queue, [{ body: new TextEncoder().encode(JSON.stringify(body)) }]);
              published.push(body);
              await new Promise((resolve) => setTimeout(resolve, 2)); // a steady stream, not a flood
              break;
            } catch {
              retried += 1;
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
        }
      })();

      await waitFor("300 messages handled before the kill", () => seen.size >= 300, 20_000);
      const killedAt = published.length;
      await cluster.kill(master);
      await cluster.healthy(30_000);
      const promoted = (await cluster.ownerOf(queue)).master;
      expect(promoted).not.toBe(master);
      // After the failover: 300 more published and handled, nothing restarted.
      const resumeFrom = published.length;
      await waitFor("300 messages published after the failover", () => published.length >= resumeFrom + 300, 30_000);
      stop = true;
      await produce;
      const after = published.slice(resumeFrom);
      await waitFor("every message published after the failover handled", () => after.every((body) => seen.has(body)), 30_000);
      // Drained: nothing waits or is taken and unsettled on the new master.
      const owner = cluster.node(promoted);
      await waitFor(
        "the queue drained and nothing left unsettled",
        async () => {
          if (mode === "stream") return Number(((await owner.xpending(queue, "wqueue")) as [number])[0]) === 0;
          if ((await owner.llen(queue)) > 0) return false;
          for (const key of await owner.keys(`{${queue}}:wqueue:processing:*`)) if ((await owner.llen(key)) > 0) return false;
          return true;
        },
        30_000,
      );

      const lost = published.filter((body) => !seen.has(body));
      const duplicates = [...seen.values()].reduce((sum, count) => sum + count - 1, 0);
      console.log(
        `redis cluster failover, mode=${mode}: ${published.length} published (${retried} publish attempts failed during the failover and were retried), ` +
          `master SIGKILLed after ${killedAt}; ${lost.length} lost${lost.length > 0 ? ` (${lost.slice(0, 5).join(", ")})` : ""}, ${duplicates} duplicate deliveries`,
      );
      // Only writes the master acknowledged but had not replicated yet can be lost: those just before the kill.
      for (const body of lost) expect(Number(body.slice(1))).toBeGreaterThanOrEqual(Math.max(0, killedAt - 200));
      expect(lines.filter((line) => /reader stopped/.test(String(line.msg)))).toEqual([]);
    }, 120_000);
  }

  it("priorities: a backlog of mixed priorities is handled highest first, FIFO within one; a nacked priority message keeps its place", async () => {
    const { queue } = (await queuesOnEveryMaster("prio", 1))[0] as { queue: string };
    const app = new WQueue({ broker: url(), retry: { baseDelayMs: 10, maxDelayMs: 20 } });
    const handled: string[] = [];
    app.listenEvents<{ n: number; p: number }>(
      queue,
      (message) => {
        if (message.body.n === 0 && message.attempt === 1) throw new Error("first try fails");
        handled.push(`${message.body.p}:${message.body.n}`);
      },
      { concurrency: 1 },
    );
    // Published before the worker starts: 0:0 (fails once) is retried in the worker, the rest
    // comes highest first, in publish order within a priority.
    const priorities = [0, 5, 9, 0, 5, 9];
    for (const [n, p] of priorities.entries()) await app.publish(queue, { n, p }, { priority: p });
    const worker = new Worker(app, { logger: memoryLogger().logger, broker: url() });
    workers.push(worker);
    await worker.start();
    await waitFor("all 6 handled", () => handled.length === 6, 30_000);
    expect(handled.slice(0, 5)).toEqual(["9:2", "9:5", "5:1", "5:4", "0:3"]);
    expect(handled[5]).toBe("0:0");
    await app.close();
  });

  it("the coordination store (rate limits, pauses, leases) runs on the Cluster, each queue's keys in one slot", async () => {
    const store = new RedisCoordinationStore(url());
    try {
      const [first, second] = (await queuesOnEveryMaster("flow", 2)).map(({ queue }) => queue);
      expect(await store.admit(first as string, 3, undefined)).toEqual({ granted: 3, waitMs: 0 });
      await store.pause(first as string, 60_000);
      expect((await store.admit(first as string, 3, { max: 100, perMs: 1000 })).granted).toBe(0);
      expect((await store.admit(second as string, 3, { max: 100, perMs: 1000 })).granted).toBeGreaterThan(0);
      const lease = `cluster-lease-${randomUUID()}`;
      expect(await store.claim(lease, 10_000)).toBe(true);
      expect(await store.claim(lease, 10_000)).toBe(false);
    } finally {
      await store.close();
    }
  });
});

describe("?cluster=true without a Cluster", () => {
  it("fails at start with a line saying no seed answered as a Cluster node (a plain Redis, or nothing)", async () => {
    for (const seeds of ["redis://127.0.0.1:6379", `redis://127.0.0.1:1,127.0.0.1:2`]) {
      const broker = openRedisBroker(`${seeds}?cluster=true`);
      brokers.push(broker);
      await expect(broker.connect()).rejects.toThrow(/no seed node answered as a Redis Cluster node/);
    }
  });
});

describe("?wait=N on a single Redis", () => {
  it("fails a publish that no replica acknowledges within waitTimeout (the shared test Redis has none)", async () => {
    const queue = `cluster-single-wait-${randomUUID().slice(0, 8)}`;
    const single = openRedisBroker("redis://127.0.0.1:6379?wait=1&waitTimeout=100");
    brokers.push(single);
    await single.connect();
    try {
      await expect(single.publish(queue, [{ body: new TextEncoder().encode("x") }])).rejects.toThrow(/0 of 1 replica\(s\) acknowledged within 100 ms/);
    } finally {
      const cleanup = new Redis(6379, "127.0.0.1");
      await cleanup.del(queue); // the message did reach the master
      cleanup.disconnect();
    }
  });
});
