import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Consumer, Delivery } from "../../src/brokers/contract.js";
import { openSqliteDatabase } from "../../src/brokers/shared/sqlite-database.js";
import { parseSqliteUrl } from "../../src/brokers/shared/sqlite-url.js";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { ConfigError } from "../../src/errors.js";

/** SQLite-specific behaviour the conformance suite cannot see: several processes, crashes, stale receipts. */
const dir = mkdtempSync(join(tmpdir(), "wqueue-sqlite-"));
const dbPath = join(dir, "shared.db");
const child = fileURLToPath(new URL("./sqlite-child.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery | undefined) => delivery && new TextDecoder().decode(delivery.body);

const brokers: SqliteBroker[] = [];
const children: ChildProcess[] = [];
const open = (query = "") => {
  const broker = new SqliteBroker(`sqlite://${dbPath}${query}`);
  brokers.push(broker);
  return broker;
};
const queueName = () => `sqlite-test.${randomUUID().slice(0, 8)}`;

afterEach(async () => {
  for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function spawnChild(...args: string[]): ChildProcess {
  const proc = spawn(process.execPath, ["--import", "tsx", child, ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(proc);
  return proc;
}

function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = "";
  proc.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  return new Promise((done) => proc.once("exit", (code, signal) => done({ code, signal, stderr })));
}

/** Reads a child's stdout line by line: each call resolves with the next line, or fails after `timeoutMs`. */
function lineReader(proc: ChildProcess): (timeoutMs?: number) => Promise<string> {
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  return async (timeoutMs = 15_000) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new Error(`child printed no line in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const next = await Promise.race([lines.next(), late]);
      if (next.done) throw new Error("child closed its stdout");
      return next.value;
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Receives until `count` deliveries arrived or the deadline passes. */
async function receiveN(consumer: Consumer, count: number, timeoutMs = 10_000): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(count - got.length, signal)));
  return got;
}

/** Rows of a queue as a separate connection sees them: the ground truth, not the adapter's view. */
function rowsIn(queue: string): number {
  const db = openSqliteDatabase(dbPath, { readOnly: true });
  try {
    return db.prepare("SELECT COUNT(*) AS n FROM messages WHERE queue = ?").get(queue)?.n as number;
  } finally {
    db.close();
  }
}

describe("sqlite broker", () => {
  it("shares one file between two OS processes, waking a waiting consumer on the other's publish", async () => {
    const queue = queueName();
    const consumer = open().consumer(queue);
    const receiving = receiveN(consumer, 20, 20_000); // waiting before the other process exists
    const publisher = spawnChild("publish", `sqlite://${dbPath}`, queue, "20");
    const result = await exited(publisher);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const got = await receiving;
    expect(got.map(read)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    expect(got.every((delivery) => delivery.attempt === 1)).toBe(true);
    await Promise.all(got.map((delivery) => delivery.ack()));
    expect(rowsIn(queue)).toBe(0);
  }, 30_000);

  it("ignores a stale holder's ack and dead letter once another consumer re-received the message", async () => {
    const queue = queueName();
    const broker = open("?visibility=300");
    await broker.publish(queue, [{ body: text("a") }, { body: text("b") }]);
    const stale = await receiveN(broker.consumer(queue), 2);
    // The second consumer gets both only once their visibility expired.
    const fresh = await receiveN(open("?visibility=30000").consumer(queue), 2);
    expect(fresh.map((d) => [read(d), d.attempt])).toEqual([
      ["a", 2],
      ["b", 2],
    ]);
    expect(fresh.map((d) => d.id)).toEqual(stale.map((d) => d.id));

    await stale[0]?.ack();
    await stale[1]?.deadLetter({ reason: "handler-failed" });
    expect(rowsIn(queue)).toBe(2);
    expect(rowsIn(`${queue}.dead`)).toBe(0);

    await Promise.all(fresh.map((d) => d.ack()));
    expect(rowsIn(queue)).toBe(0);
  });

  it("keeps a delayed nack across a reopen of the file", async () => {
    const queue = queueName();
    const first = open();
    await first.publish(queue, [{ body: text("later") }]);
    const [delivery] = await receiveN(first.consumer(queue), 1);
    const nackedAt = Date.now();
    await delivery?.nack({ delayMs: 400 });
    await first.close();

    const [again] = await receiveN(open().consumer(queue), 1);
    expect(read(again)).toBe("later");
    expect(again?.attempt).toBe(2);
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(390);
    await again?.ack();
  });

  it("delivers a row that an outside SQLite client inserted with plain SQL", async () => {
    const queue = queueName();
    const broker = open();
    await broker.connect(); // creates the schema
    const consumer = broker.consumer(queue);
    const receiving = receiveN(consumer, 2);
    const db = openSqliteDatabase(dbPath);
    try {
      db.prepare("INSERT INTO messages (queue, body) VALUES (?, ?)").run(queue, '{"n":5}');
      db.prepare("INSERT INTO messages (queue, body, headers) VALUES (?, ?, ?)").run(queue, "x", "not json");
    } finally {
      db.close();
    }
    const got = await receiving;
    expect(got.map((d) => [read(d), d.attempt, d.headers])).toEqual([
      ['{"n":5}', 1, {}],
      ["x", 1, {}],
    ]);
    await Promise.all(got.map((d) => d.ack()));
  });

  it("coalesces acks of one tick and keeps publish order across batches", async () => {
    const queue = queueName();
    const broker = open();
    await broker.publish(queue, Array.from({ length: 300 }, (_, i) => ({ body: text(String(i)) })));
    const got = await receiveN(broker.consumer(queue), 300);
    expect(got.map(read)).toEqual(Array.from({ length: 300 }, (_, i) => String(i)));
    await Promise.all(got.map((d) => d.ack()));
    expect(rowsIn(queue)).toBe(0);
  });
});

/** A row as a separate connection sees it. */
function rowOf(id: string | undefined): { visible_at: number; attempt: number; receipt: string } | undefined {
  const db = openSqliteDatabase(dbPath, { readOnly: true });
  try {
    return db.prepare("SELECT visible_at, attempt, receipt FROM messages WHERE id = ?").get(Number(id)) as
      | { visible_at: number; attempt: number; receipt: string }
      | undefined;
  } finally {
    db.close();
  }
}

describe("sqlite lease (a handler slower than ?visibility= runs once)", () => {
  const visibilityMs = 500;

  /**
   * This process receives one message and holds it (renewing it every leaseMs/3 if `extend`), while
   * another OS process tries to receive from the same queue for 3x the visibility.
   */
  async function holdWhileAnotherProcessTries(extend: boolean) {
    const queue = queueName();
    const broker = open(`?visibility=${visibilityMs}`);
    await broker.publish(queue, [{ body: text("slow") }]);
    const consumer = broker.consumer(queue);
    expect(consumer.leaseMs).toBe(visibilityMs);
    const [held] = await receiveN(consumer, 1);
    if (!held) throw new Error("nothing received");
    const renewals: Promise<void>[] = [];
    const keeper = extend
      ? setInterval(() => renewals.push(consumer.extend?.([held]) ?? Promise.resolve()), visibilityMs / 3)
      : undefined;
    try {
      const other = spawnChild("try-receive", `sqlite://${dbPath}?visibility=30000`, queue, String(3 * visibilityMs));
      const next = lineReader(other);
      expect(await next()).toBe("listening");
      const seen = JSON.parse(await next()) as { attempt: number; body: string } | null;
      await Promise.all(renewals); // none rejected
      return { queue, held, seen };
    } finally {
      clearInterval(keeper);
    }
  }

  it("extend keeps a held message from another process for 3x the visibility, then its ack removes it", async () => {
    const { queue, held, seen } = await holdWhileAnotherProcessTries(true);
    expect(seen).toBeNull();
    expect(rowOf(held.id)?.attempt).toBe(1); // never handed out again
    await held.ack();
    expect(rowsIn(queue)).toBe(0);
  }, 30_000);

  it("without extend the other process does get it once the visibility passed (the property is real)", async () => {
    const { queue, held, seen } = await holdWhileAnotherProcessTries(false);
    expect(seen).toEqual(expect.objectContaining({ attempt: 2, body: "slow" }));
    await held.ack(); // stale receipt: changes nothing
    expect(rowsIn(queue)).toBe(1);
  }, 30_000);

  it("extend skips a delivery settled here and leaves a row another consumer re-took untouched", async () => {
    const queue = queueName();
    const broker = open("?visibility=30000");
    await broker.publish(queue, [{ body: text("nacked") }, { body: text("kept") }, { body: text("lost") }]);
    const consumer = broker.consumer(queue);
    const [nacked, kept] = await receiveN(consumer, 2);
    const shortLease = open("?visibility=300").consumer(queue);
    const [lost] = await receiveN(shortLease, 1);
    if (!nacked || !kept || !lost) throw new Error("expected three deliveries");

    // The nack comes first: an extension after it must not hide the row again.
    await nacked.nack({ delayMs: 0 });
    const nackedRow = rowOf(nacked.id);
    const before = Date.now();
    await consumer.extend?.([nacked, kept]);
    expect(rowOf(nacked.id)).toEqual(nackedRow);
    expect(rowOf(kept.id)?.visible_at).toBeGreaterThanOrEqual(before + 30_000);

    // "lost" expires; another consumer re-takes it under its own receipt, which a stale extend leaves alone.
    const other = open("?visibility=30000").consumer(queue);
    const retaken = await receiveN(other, 2);
    expect(retaken.map((d) => [read(d), d.attempt])).toEqual([
      ["nacked", 2],
      ["lost", 2],
    ]);
    const lostRow = rowOf(lost.id);
    await shortLease.extend?.([lost]);
    expect(rowOf(lost.id)).toEqual(lostRow);

    await kept.ack();
    await Promise.all(retaken.map((d) => d.ack()));
    expect(rowsIn(queue)).toBe(0);
  });
});

describe("sqlite URL", () => {
  it("reads relative, dot-relative and absolute paths without host parsing", () => {
    expect(parseSqliteUrl("sqlite://wqueue.db").path).toBe(resolve("wqueue.db"));
    expect(parseSqliteUrl("sqlite://./dir/x.db").path).toBe(resolve("dir/x.db"));
    expect(parseSqliteUrl("sqlite:///abs/path.db")).toEqual({ path: "/abs/path.db", visibilityMs: 30_000, pollMs: 25 });
    expect(parseSqliteUrl("sqlite:///abs/path.db?visibility=500&poll=5")).toMatchObject({
      visibilityMs: 500,
      pollMs: 5,
    });
  });

  it("rejects an empty path and bad parameters with a ConfigError", () => {
    expect(() => new SqliteBroker("sqlite://")).toThrow(ConfigError);
    expect(() => new SqliteBroker("sqlite://?visibility=5")).toThrow(/no database file/);
    expect(() => new SqliteBroker("sqlite://x.db?visibility=0")).toThrow(ConfigError);
    expect(() => new SqliteBroker("sqlite://x.db?poll=soon")).toThrow(/poll=soon/);
  });

  it("refuses a missing directory with a ConfigError instead of creating it", async () => {
    const missing = join(dir, "no-such-dir", "b");
    const broker = new SqliteBroker(`sqlite://${join(missing, "typo.db")}?visibility=1000`);
    brokers.push(broker);
    await expect(broker.connect()).rejects.toThrow(ConfigError);
    await expect(broker.publish("q", [{ body: text("x") }])).rejects.toThrow(
      `broker sqlite://${join(missing, "typo.db")}?visibility=1000: directory ${missing} does not exist`,
    );
    expect(existsSync(join(dir, "no-such-dir"))).toBe(false);
  });

  it("shows the absolute path of the file in its URL, parameters as given and redacted", () => {
    expect(new SqliteBroker("sqlite://rel/x.db?visibility=1000").url).toBe(`sqlite://${resolve("rel/x.db")}?visibility=1000`);
    expect(new SqliteBroker("sqlite:x.db").url).toBe(`sqlite://${resolve("x.db")}`);
    expect(new SqliteBroker("sqlite:///abs/dir with space/x.db?password=hunter2").url).toBe(
      "sqlite:///abs/dir with space/x.db?password=***",
    );
  });
});
