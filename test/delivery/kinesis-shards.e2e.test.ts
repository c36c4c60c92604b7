import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ListShardsCommand, SplitShardCommand } from "@aws-sdk/client-kinesis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { dropKinesisApp, requireKinesis } from "../brokers/kinesis-server.js";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { REDIS_URL } from "../setup/ensure-redis.js";

/**
 * Kinesis end to end, with real `wqueue worker` child processes on the real kinesis-local and
 * leases and checkpoints in the real Redis: a worker killed with SIGKILL while two share a 4-shard
 * stream (its shards must move to the other, nothing lost), and a shard split while a worker reads
 * (per-shard order, and per-key order across parent and children).
 */
const server = requireKinesis({ prefix: "kinesis-e2e" });
const app = `e2e-${randomUUID().slice(0, 8)}`;
const running: RunningCli[] = [];

afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});
afterAll(() => dropKinesisApp(app));

interface Handled {
  pid: number;
  shard: string;
  sequence: string;
  id: number;
  key: string;
  n: number;
}

/** An app whose handler takes about 1 ms, then appends "pid shard sequence id key n" to a file. */
function recordingApp(dir: string, stream: string): { file: string; out: string } {
  const out = path.join(dir, "handled.txt");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 50, baseDelayMs: 10, maxDelayMs: 100 } });
app.listenEvents(${JSON.stringify(stream)}, async (m: { id: string; body: { id: number; key: string; n: number } }) => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  const [shard, sequence] = m.id.split(":");
  appendFileSync(${JSON.stringify(out)}, [process.pid, shard, sequence, m.body.id, m.body.key, m.body.n].join(" ") + "\\n");
});`,
  );
  return { file, out };
}

function handled(out: string): Handled[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [pid, shard, sequence, id, key, n] = line.split(" ");
      return { pid: Number(pid), shard: shard as string, sequence: sequence as string, id: Number(id), key: key as string, n: Number(n) };
    });
}

/** Record i has key k(i mod keys) and is the n-th of its key. */
function records(from: number, to: number, keys: number) {
  return Array.from({ length: to - from }, (_, j) => {
    const id = from + j;
    const key = `k${id % keys}`;
    return { key, data: JSON.stringify({ id, key, n: Math.floor(id / keys) }) };
  });
}

function startWorker(file: string, url: string): RunningCli {
  const cli = startCli(["worker", "-a", file, "--broker", url, "--concurrency", "20"]);
  running.push(cli);
  return cli;
}

const uniqueIds = (rows: Handled[]) => new Set(rows.map((row) => row.id)).size;

describe("kinesis: shards move between workers, reshards keep order", () => {
  it("4 shards, 2 workers, one killed with SIGKILL during 10,000 records: the other takes its shards over, 0 lost", async () => {
    const stream = server.streamName();
    await server.createStream(stream, 4);
    const url = server.url(`app=${app}&checkpoints=${REDIS_URL}&lease=3000&poll=50`);
    const { file, out } = recordingApp(tempDir(), stream);
    const count = 10_000;
    const a = startWorker(file, url);
    const b = startWorker(file, url);
    const a_pid = a.child.pid as number;
    const b_pid = b.child.pid as number;
    const publishing = (async () => {
      for (let from = 0; from < count; from += 1000) await server.put(stream, records(from, from + 1000, 200));
    })();

    // The lease balance gives each worker two of the four shards: both read, from disjoint shards,
    // before one of them dies mid-stream.
    // The shards are judged on one read of the file, the read that met the condition: a second read
    // a moment later may see A's last 400 rows on a single shard and is not what was waited for.
    const recentShards = (rows: Handled[], pid: number) => new Set(rows.slice(-400).filter((row) => row.pid === pid).map((row) => row.shard));
    let beforeKill: Handled[] = [];
    await waitFor(
      () => `two shards each (a: ${[...recentShards(beforeKill, a_pid)]}, b: ${[...recentShards(beforeKill, b_pid)]})`,
      () => {
        beforeKill = handled(out);
        const [ofA, ofB] = [recentShards(beforeKill, a_pid), recentShards(beforeKill, b_pid)];
        return ofA.size === 2 && ofB.size === 2 && [...ofA].every((shard) => !ofB.has(shard)) && beforeKill.length >= 2000;
      },
      90_000,
    );
    const shardsOfA = recentShards(beforeKill, a_pid);
    a.child.kill("SIGKILL");
    await a.exited;
    const killedAt = beforeKill.length;

    await publishing;
    await waitFor(() => `every id (${uniqueIds(handled(out))} of ${count})`, () => uniqueIds(handled(out)) === count, 120_000);
    const rows = handled(out);
    const afterKill = rows.slice(killedAt).filter((row) => row.pid === b_pid);
    const takenOver = [...shardsOfA].filter((shard) => afterKill.some((row) => row.shard === shard));
    const result = { handled: rows.length, unique: uniqueIds(rows), duplicates: rows.length - uniqueIds(rows), shardsOfA: [...shardsOfA], takenOver };
    console.log(`kinesis takeover: ${count} records, 4 shards, 2 workers, one SIGKILL: ${JSON.stringify(result)}`);
    expect(result.unique).toBe(count);
    expect(shardsOfA.size).toBe(2);
    expect(takenOver.sort()).toEqual([...shardsOfA].sort());
    b.child.kill("SIGTERM");
    expect(await b.exited).toBe(0);
  }, 300_000);

  it("a shard split while a worker reads: each shard in sequence order, each key in order across parent and children", async () => {
    const stream = server.streamName();
    await server.createStream(stream, 2);
    const url = server.url(`app=${app}&checkpoints=${REDIS_URL}&lease=3000&poll=50`);
    const { file, out } = recordingApp(tempDir(), stream);
    const keys = 50;
    await server.put(stream, records(0, 2000, keys));
    const worker = startWorker(file, url);
    await waitFor(() => `500 handled (at ${handled(out).length})`, () => handled(out).length >= 500, 60_000);

    const [parent] = await shardsOf(stream);
    const start = BigInt(parent?.HashKeyRange?.StartingHashKey as string);
    const end = BigInt(parent?.HashKeyRange?.EndingHashKey as string);
    await server.raw.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: parent?.ShardId, NewStartingHashKey: ((start + end) / 2n).toString() }));
    await server.waitActive(stream);
    await server.put(stream, records(2000, 4000, keys));

    await waitFor(() => `every id (${uniqueIds(handled(out))} of 4000)`, () => uniqueIds(handled(out)) === 4000, 120_000);
    const rows = handled(out);
    const children = (await shardsOf(stream)).filter((shard) => shard.ParentShardId === parent?.ShardId).map((shard) => shard.ShardId);
    expect(children).toHaveLength(2);
    // The children were read: records after the split reached them, and through this worker.
    expect(rows.some((row) => children.includes(row.shard))).toBe(true);
    for (const [shard, ofShard] of groupBy(rows, (row) => row.shard)) {
      const sequences = ofShard.map((row) => BigInt(row.sequence));
      expect(sequences, `shard ${shard} in sequence order`).toEqual([...sequences].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
    }
    for (const [key, ofKey] of groupBy(rows, (row) => row.key)) {
      const ns = ofKey.map((row) => row.n);
      expect(ns, `key ${key} in order`).toEqual([...ns].sort((x, y) => x - y));
    }
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 240_000);
});

describe("kinesis: a record whose handler kills the worker every time", () => {
  it("is counted across the crashes and dead-lettered as poison after maxAttempts deliveries; the rest is handled", async () => {
    const stream = server.streamName();
    await server.createStream(stream, 1);
    const dir = tempDir();
    const out = path.join(dir, "handled.txt");
    const file = writeApp(
      dir,
      "app.ts",
      `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
app.listenEvents(${JSON.stringify(stream)}, async (m: { body: { id: number; poison?: boolean } }) => {
  if (m.body.poison) process.kill(process.pid, "SIGKILL");
  appendFileSync(${JSON.stringify(out)}, m.body.id + "\\n");
});`,
    );
    const bodies = Array.from({ length: 20 }, (_, id) => ({ key: "one-key", data: JSON.stringify(id === 5 ? { id, poison: true } : { id }) }));
    await server.put(stream, bodies);
    const url = server.url(`app=${app}&checkpoints=${REDIS_URL}&lease=1500&poll=50`);
    const ids = () => (existsSync(out) ? new Set(readFileSync(out, "utf8").split("\n").filter(Boolean).map(Number)) : new Set<number>());
    let crashes = 0;
    while (ids().size < 19 && crashes <= 6) {
      const worker = startWorker(file, url);
      const code = await Promise.race([
        worker.exited,
        waitFor(() => `all but the poison record (${ids().size} handled, ${crashes} crashes; missing ${Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 5 && !ids().has(i))}; ${worker.stdout.slice(-6).join(" | ")})`, () => ids().size >= 19, 30_000).then(() => "done"),
      ]);
      if (code === "done") {
        worker.child.kill("SIGTERM");
        expect(await worker.exited).toBe(0);
      } else {
        crashes += 1;
        if (code !== null) throw new Error(`the worker exited with ${code}, not killed: ${worker.stderr.slice(-5).join(" | ")}`);
      }
    }
    const dead = (await server.readAll(`${stream}.dead`)).map((record) => JSON.parse(record.data.toString()));
    console.log(`kinesis poison: ${crashes} crashes, then dead-lettered: ${JSON.stringify(dead)}`);
    expect(ids().size).toBe(19);
    expect(crashes).toBe(3);
    expect(dead).toHaveLength(1);
    expect(dead[0]?.b ? JSON.parse(Buffer.from(dead[0].b, "base64").toString()) : undefined).toEqual({ id: 5, poison: true });
    expect(dead[0]?.h?.["x-wqueue-dead-reason"]).toBe("poison");
  }, 120_000);
});

async function shardsOf(stream: string) {
  return (await server.raw.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
}

function groupBy<T>(items: T[], by: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = by(item);
    groups.set(key, [...(groups.get(key) ?? []), item]);
  }
  return groups;
}
