import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type LeaseStore, SHARD_END } from "../../src/brokers/kinesis/leases/LeaseStore.js";
import { openLeaseStore } from "../../src/brokers/kinesis/leases/open-lease-store.js";
import { waitFor } from "../helpers.js";
import { REDIS_URL, rawRedis, requireRedis } from "./redis-server.js";

/**
 * The shard lease store contract (./LeaseStore.ts), against a real Redis and a real SQLite file.
 * Every test has its own app and stream names; Redis keys of the app are deleted after each test.
 */
const dir = mkdtempSync(join(tmpdir(), "wqueue-leases-"));
writeFileSync(join(dir, "blocker"), "a file where the unreachable case wants a directory");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cases = [
  { kind: "redis", url: REDIS_URL, unreachable: "redis://:hunter2-secret@127.0.0.1:1/0" },
  {
    kind: "sqlite",
    url: `sqlite://${join(dir, "leases.db")}`,
    unreachable: `sqlite://${join(dir, "blocker", "x.db")}?password=hunter2-secret`,
  },
];

describe.each(cases)("$kind lease store", ({ kind, url, unreachable }) => {
  let app = "";
  let stream = "";
  const opened: LeaseStore[] = [];
  let redis: Redis | undefined;
  if (kind === "redis") {
    requireRedis();
    beforeAll(async () => {
      redis = rawRedis();
      await redis.connect();
    });
    afterAll(() => redis?.quit());
  }

  beforeEach(() => {
    app = `app-${randomUUID().slice(0, 8)}`;
    stream = `stream-${randomUUID().slice(0, 8)}`;
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
    const keys = (await redis?.keys(`wqueue:kinesis:${app}:*`)) ?? [];
    if (keys.length > 0) await redis?.del(...keys);
  });

  /** A connected store of the test's app: one per worker, each with its own connection. */
  async function open(): Promise<LeaseStore> {
    const store = await openLeaseStore(url, app);
    opened.push(store);
    await store.connect();
    return store;
  }

  it("gives a contested shard to exactly one of two racing workers, round after round", async () => {
    const [a, b] = [await open(), await open()];
    for (let round = 0; round < 50; round++) {
      const shard = `shardId-${round}`;
      const [wonA, wonB] = await Promise.all([a.acquire(stream, shard, "A", 10_000), b.acquire(stream, shard, "B", 10_000)]);
      expect(Number(wonA) + Number(wonB), `round ${round}`).toBe(1);
      const owner = (await a.read(stream, [shard])).get(shard)?.owner;
      expect(owner).toBe(wonA ? "A" : "B");
      expect(await (wonA ? b : a).acquire(stream, shard, wonA ? "B" : "A", 10_000)).toBe(false);
      expect(await (wonA ? a : b).acquire(stream, shard, wonA ? "A" : "B", 10_000)).toBe(true); // ours again: kept
    }
  });

  it("gives each shard to exactly one of several worker processes", async () => {
    const workers = ["P1", "P2", "P3"].map((worker) => raceChild(url, app, stream, worker, 100));
    await Promise.all(workers.map((child) => child.ready));
    for (const child of workers) child.go();
    const won = await Promise.all(workers.map((child) => child.won));
    const winners = new Map<number, number>();
    for (const shards of won) for (const shard of shards) winners.set(shard, (winners.get(shard) ?? 0) + 1);
    expect(winners.size).toBe(100);
    expect([...winners.values()].every((count) => count === 1)).toBe(true);
  }, 150_000);

  it("renews the leases still held, keeps them past their ttl, and leaves lost ones out", async () => {
    const [a, b] = [await open(), await open()];
    // The ttl is long beside the 50 ms between renewals, so a loaded machine's late timer cannot
    // let a lease lapse between two of them; the loop runs past three ttls.
    const TTL = 1500;
    expect(await a.acquire(stream, "s1", "A", TTL)).toBe(true);
    expect(await a.acquire(stream, "s2", "A", TTL)).toBe(true);
    expect(await b.acquire(stream, "s3", "B", 10_000)).toBe(true);
    const until = Date.now() + 3 * TTL;
    while (Date.now() < until) {
      expect(await a.renew(stream, ["s1", "s3", "s2", "never"], "A", TTL)).toEqual(["s1", "s2"]);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await b.acquire(stream, "s1", "B", 10_000)).toBe(false);
    const read = await b.read(stream, ["s1", "s2", "s3"]);
    expect([...read.values()].map((info) => info.owner)).toEqual(["A", "A", "B"]);
    await a.release(stream, "s1", "A");
    expect(await a.renew(stream, ["s1", "s2"], "A", TTL)).toEqual(["s2"]);
    expect(await a.renew(stream, [], "A", TTL)).toEqual([]);
  });

  it("lets another worker acquire a lease that was not renewed in time", async () => {
    const [a, b] = [await open(), await open()];
    expect(await a.acquire(stream, "s1", "A", 300)).toBe(true);
    const taken = Date.now();
    expect(await b.acquire(stream, "s1", "B", 10_000)).toBe(false);
    await waitFor("B to acquire the expired lease", () => b.acquire(stream, "s1", "B", 10_000), 5000);
    expect(Date.now() - taken).toBeGreaterThanOrEqual(250); // not before its ttl (some slack for clock granularity)
    expect((await a.read(stream, ["s1"])).get("s1")?.owner).toBe("B");
    expect(await a.renew(stream, ["s1"], "A", 300)).toEqual([]);
    expect(await a.checkpoint(stream, "s1", "A", { sequence: "1", metadata: null })).toBe(false);
  });

  it("refuses a checkpoint from a worker that does not hold the lease, leaving the stored one as it was", async () => {
    const [a, b] = [await open(), await open()];
    expect(await b.checkpoint(stream, "s1", "B", { sequence: "5", metadata: null })).toBe(false); // nobody holds it
    expect((await a.read(stream, ["s1"])).get("s1")?.checkpoint).toBeUndefined();
    expect(await a.acquire(stream, "s1", "A", 10_000)).toBe(true);
    expect(await a.checkpoint(stream, "s1", "A", { sequence: "100", metadata: "m-A" })).toBe(true);
    expect(await b.checkpoint(stream, "s1", "B", { sequence: "200", metadata: "m-B" })).toBe(false);
    expect((await b.read(stream, ["s1"])).get("s1")).toEqual({ owner: "A", checkpoint: { sequence: "100", metadata: "m-A" } });
  });

  it("keeps checkpoints and their metadata through release and expiry; SHARD_END round-trips", async () => {
    const [a, b] = [await open(), await open()];
    const sequence = "49590338271490256608559692538361571095921575989136588898";
    const metadata = JSON.stringify({ pending: { "4959033827149025660855969253836157109592157598913658890": 2 } });
    expect(await a.acquire(stream, "s1", "A", 10_000)).toBe(true);
    expect(await a.checkpoint(stream, "s1", "A", { sequence, metadata })).toBe(true);
    await a.release(stream, "s1", "A");
    expect((await b.read(stream, ["s1"])).get("s1")).toEqual({ owner: undefined, checkpoint: { sequence, metadata } });

    expect(await b.acquire(stream, "s1", "B", 300)).toBe(true);
    expect(await b.checkpoint(stream, "s1", "B", { sequence: SHARD_END, metadata: null })).toBe(true);
    await waitFor("B's lease to expire", async () => (await a.read(stream, ["s1"])).get("s1")?.owner === undefined, 5000);
    const reopened = await open();
    expect((await reopened.read(stream, ["s1"])).get("s1")?.checkpoint).toEqual({ sequence: SHARD_END, metadata: null });
  });

  it("releases only the owner's lease", async () => {
    const [a, b] = [await open(), await open()];
    expect(await a.acquire(stream, "s1", "A", 10_000)).toBe(true);
    await b.release(stream, "s1", "B");
    expect((await b.read(stream, ["s1"])).get("s1")?.owner).toBe("A");
    await a.release(stream, "s1", "A");
    expect(await b.acquire(stream, "s1", "B", 10_000)).toBe(true);
  });

  it("lists live workers and drops one that stopped heartbeating after its ttl", async () => {
    const [a, b] = [await open(), await open()];
    expect(await a.heartbeat(stream, "A", 300)).toEqual(["A"]);
    expect(await b.heartbeat(stream, "B", 10_000)).toEqual(["A", "B"]);
    await waitFor("A to drop out", async () => (await b.heartbeat(stream, "B", 10_000)).join() === "B", 5000);
    expect(await a.heartbeat(stream, "A", 10_000)).toEqual(["A", "B"]); // back when it beats again
    expect(await a.heartbeat("other-stream", "A", 10_000)).toEqual(["A"]); // per stream
  });

  it("forgets a worker that leaves at once", async () => {
    const [a, b] = [await open(), await open()];
    await a.heartbeat(stream, "A", 10_000);
    expect(await b.heartbeat(stream, "B", 10_000)).toEqual(["A", "B"]);
    await b.leave(stream, "B");
    expect(await a.heartbeat(stream, "A", 10_000)).toEqual(["A"]);
  });

  it("reads shards never seen as unowned and without a checkpoint", async () => {
    const store = await open();
    expect(await store.acquire(stream, "known", "A", 10_000)).toBe(true);
    const read = await store.read(stream, ["nope-1", "known", "nope-2"]);
    expect([...read.keys()]).toEqual(["nope-1", "known", "nope-2"]);
    expect(read.get("nope-1")).toEqual({ owner: undefined, checkpoint: undefined });
    expect(read.get("known")).toEqual({ owner: "A", checkpoint: undefined });
    expect(await store.read(stream, [])).toEqual(new Map());
  });

  it("fails to connect (no endless retrying), naming the URL without its password", async () => {
    const store = await openLeaseStore(unreachable, app);
    opened.push(store);
    const error = await store.connect().then(
      () => undefined,
      (failure: Error) => failure,
    );
    expect(error?.name).toBe("BrokerUnreachableError");
    expect(error?.message).toContain(unreachable.replace("hunter2-secret", "***"));
    expect(error?.message).not.toContain("hunter2");
  });
});

describe("openLeaseStore", () => {
  it("refuses other schemes with a ConfigError naming the redacted URL and the supported schemes", async () => {
    const error = await openLeaseStore("kafka://user:hunter2@localhost:9092", "app").then(
      () => undefined,
      (failure: Error) => failure,
    );
    expect(error?.name).toBe("ConfigError");
    expect(error?.message).toContain("kafka://user:***@localhost:9092");
    expect(error?.message).toContain("redis, rediss, sqlite");
    expect(error?.message).not.toContain("hunter2");
  });
});

const racers: ChildProcess[] = [];
afterEach(() => {
  for (const child of racers.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});
const openerPath = fileURLToPath(new URL("../../src/brokers/kinesis/leases/open-lease-store.ts", import.meta.url));
/** Connects, prints "ready", waits for a line on stdin, then tries every shard once and prints those it won. */
const RACER = `
const [opener, url, app, stream, worker, count] = process.argv.slice(1);
const { openLeaseStore } = await import(opener);
const store = await openLeaseStore(url, app);
await store.connect();
console.log("ready");
await new Promise((resolve) => process.stdin.once("data", resolve));
const won = [];
for (let i = 0; i < Number(count); i++) if (await store.acquire(stream, "shard-" + i, worker, 60000)) won.push(i);
console.log(JSON.stringify(won));
await store.close();
process.exit(0);`;

function raceChild(url: string, app: string, stream: string, worker: string, count: number) {
  const args = ["--import", "tsx", "--input-type=module", "-e", RACER, openerPath, url, app, stream, worker, String(count)];
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
  racers.push(child);
  const lines = createInterface({ input: child.stdout });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      // A bound for a hang: three child processes start slowly on a loaded machine.
      const timer = setTimeout(() => reject(new Error(`racer ${worker} said nothing within 60 s`)), 60_000);
      lines.once("line", (line) => {
        clearTimeout(timer);
        resolve(line);
      });
      child.once("close", (code) => reject(new Error(`racer ${worker} exited with ${code}`)));
    });
  const ready = next();
  return {
    ready,
    go: () => child.stdin.write("go\n"),
    won: ready.then(next).then((line) => JSON.parse(line) as number[]),
  };
}
