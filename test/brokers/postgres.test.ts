import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import type { Consumer, Delivery } from "../../src/brokers/contract.js";
import { PostgresBroker } from "../../src/brokers/postgres/PostgresBroker.js";
import { parsePostgresUrl } from "../../src/brokers/postgres/postgres-url.js";
import { createBroker } from "../../src/brokers/registry.js";
import { ConfigError } from "../../src/errors.js";
import { createLogger } from "../../src/log/logger.js";
import { Worker } from "../../src/worker/Worker.js";
import { runCli, tempDir } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { dropSchema, POSTGRES_URL, schemaUrl, sql, testSchema } from "./postgres-helpers.js";

/** PostgreSQL-specific behaviour the conformance suite cannot see: crashes, SQL producers, transactions, idleness. */
const schema = testSchema();
const child = fileURLToPath(new URL("./postgres-child.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery | undefined) => delivery && new TextDecoder().decode(delivery.body);
const queueName = () => `pg-test.${randomUUID().slice(0, 8)}`;

const cleanups: (() => Promise<unknown>)[] = [];
const children: ChildProcess[] = [];
const schemas: string[] = [schema];
const open = (params = "") => {
  const broker = new PostgresBroker(schemaUrl(schema, params));
  cleanups.push(() => broker.close());
  return broker;
};

afterEach(async () => {
  for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});
afterAll(async () => {
  for (const name of schemas) await dropSchema(name);
});

async function receiveN(consumer: Consumer, count: number, timeoutMs = 10_000): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(count - got.length, signal)));
  return got;
}

/** Rows of a queue as a separate connection sees them: the ground truth, not the adapter's view. */
async function rowsIn(queue: string, where = "true"): Promise<number> {
  const [row] = await sql<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".messages WHERE queue = $1 AND ${where}`, [queue]);
  return Number(row?.n);
}

function firstLine(proc: ChildProcess, timeoutMs = 20_000): Promise<string> {
  let stderr = "";
  proc.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  return new Promise((done, fail) => {
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => fail(new Error(`child printed nothing in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    lines.once("line", (line) => {
      clearTimeout(timer);
      done(line);
    });
    proc.once("exit", (code) => fail(new Error(`child exited (${code}) before printing: ${stderr}`)));
  });
}

describe("postgres broker", () => {
  it("loses nothing when a worker is SIGKILLed mid-batch: its unacked rows come back after the lease, attempt 2", async () => {
    const queue = queueName();
    const broker = open("lease=1000");
    const bodies = Array.from({ length: 10 }, (_, i) => `m${i}`);
    await broker.publish(queue, bodies.map((body) => ({ body: text(body) })));
    const crasher = spawn(process.execPath, ["--import", "tsx", child, "receive", schemaUrl(schema, "lease=1000"), queue, "10", "4"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(crasher);
    const line = JSON.parse(await firstLine(crasher)) as { acked: string[]; held: string[]; attempts: number[]; at: number };
    expect(line.acked).toEqual(bodies.slice(0, 4));
    expect(line.held).toEqual(bodies.slice(4));
    expect(line.attempts.every((attempt) => attempt === 1)).toBe(true);
    const gone = new Promise((done) => crasher.once("exit", (_code, signal) => done(signal)));
    crasher.kill("SIGKILL");
    expect(await gone).toBe("SIGKILL");

    const again = await receiveN(broker.consumer(queue), 6, 15_000);
    expect(again.map(read)).toEqual(line.held);
    expect(again.every((delivery) => delivery.attempt === 2)).toBe(true);
    // Hidden for the whole lease, counted from the child's claim.
    expect(Date.now() - line.at).toBeGreaterThanOrEqual(900);
    await Promise.all(again.map((delivery) => delivery.ack()));
    await waitFor("the acks to land", async () => (await rowsIn(queue)) === 0);
  }, 40_000);

  it("ignores a stale holder's ack and dead letter once another consumer claimed the row", async () => {
    const queue = queueName();
    await open().publish(queue, [{ body: text("a") }, { body: text("b") }]);
    const stale = await receiveN(open("lease=300").consumer(queue), 2);
    const fresh = await receiveN(open().consumer(queue), 2);
    expect(fresh.map((d) => [read(d), d.attempt])).toEqual([
      ["a", 2],
      ["b", 2],
    ]);
    await stale[0]?.ack();
    await stale[1]?.deadLetter({ reason: "handler-failed" });
    await new Promise((resolve) => setImmediate(resolve));
    expect(await rowsIn(queue)).toBe(2);
    expect(await rowsIn(`${queue}.dead`)).toBe(0);
    await Promise.all(fresh.map((d) => d.ack()));
    await waitFor("the acks to land", async () => (await rowsIn(queue)) === 0);
  });

  it("acks of one turn under different receipts settle each row only for its own holder", async () => {
    const queue = queueName();
    const broker = open("lease=300");
    await broker.publish(queue, [{ body: text("a") }, { body: text("b") }]);
    const stale = await receiveN(broker.consumer(queue), 2);
    // The lease runs out: a second claim on the same broker takes both rows under a new receipt.
    const fresh = await receiveN(broker.consumer(queue), 2, 5_000);
    expect(fresh.map((d) => [read(d), d.attempt])).toEqual([
      ["a", 2],
      ["b", 2],
    ]);
    // One flush, two receipts: the stale ack of "a" must not delete the row "fresh" now holds.
    await Promise.all([stale[0]?.ack(), fresh[1]?.ack()]);
    expect(await rowsIn(queue)).toBe(1);
    await fresh[0]?.ack();
    expect(await rowsIn(queue)).toBe(0);
  });

  it("plans each claim (and each look for the next due row) for its queue: no generic plan, which would scan past other queues' rows", async () => {
    // A generic plan, cached while the table was small, knows neither the queue nor the batch size:
    // it claimed through the primary key past every row of the other queues, and joined the update
    // through a scan of the whole table (about 100 ms a claim once another queue held 100,000 rows).
    const fresh = testSchema("wqueue_plans");
    schemas.push(fresh);
    const broker = new PostgresBroker(schemaUrl(fresh, "pool=1"));
    cleanups.push(() => broker.close());
    await broker.publish("big", Array.from({ length: 300 }, (_, i) => ({ body: text(`b${i}`) })));
    await broker.publish("small", Array.from({ length: 100 }, (_, i) => ({ body: text(`s${i}`) })));
    await broker.publish("later", Array.from({ length: 300 }, (_, i) => ({ body: text(`l${i}`), delayMs: 86_400_000 })));
    await sql(`ANALYZE "${fresh}".messages`);
    const consumer = broker.consumer("small");
    for (let claim = 0; claim < 8; claim += 1) {
      const [delivery] = await receiveN(consumer, 1);
      await delivery?.ack();
    }
    // A claim that finds nothing asks when the queue's next row is due (here: a day away), a
    // statement with the same trap (a seq scan, wherever the rows of other queues are).
    const later = broker.consumer("later");
    for (let look = 0; look < 8; look += 1) expect(await later.receive(1, AbortSignal.timeout(50))).toEqual([]);
    // pool=1: the consumer side's one connection, where its statements are prepared.
    const { rows } = await broker.consumerTable.pool.query<{ name: string; generic_plans: string }>(
      "SELECT name, generic_plans FROM pg_prepared_statements WHERE generic_plans > 0 AND (name LIKE 'wqueue_claim%' OR name LIKE 'wqueue_next%')",
    );
    expect(rows).toEqual([]);
  });

  it("plans claims without sorts or bitmap scans: a burst not analyzed yet is read through its index in id order", async () => {
    // Seen in bench:postgres: on statistics taken before a burst of 30,000 rows the planner took
    // the new queue for 2 rows, fetched all 30,000 with a bitmap scan and sorted them, for every
    // batch of 100 (about 40 ms a claim). The consumer side's connections leave it no such plan.
    const fresh = testSchema("wqueue_burst");
    schemas.push(fresh);
    const broker = new PostgresBroker(schemaUrl(fresh, "pool=1"));
    cleanups.push(() => broker.close());
    await broker.publish("before", Array.from({ length: 300 }, (_, i) => ({ body: text(`b${i}`) })));
    await sql(`ANALYZE "${fresh}".messages`);
    await sql(`INSERT INTO "${fresh}".messages (queue, body) SELECT 'burst', convert_to('m' || i, 'UTF8') FROM generate_series(1, 20000) AS i`);
    // pool=1: the consumer side's one connection.
    const pool = broker.consumerTable.pool;
    const settings = await pool.query("SELECT current_setting('enable_sort') AS sort, current_setting('enable_bitmapscan') AS bitmap");
    expect(settings.rows).toEqual([{ sort: "off", bitmap: "off" }]);
    const { rows } = await pool.query<{ "QUERY PLAN": string }>(
      `EXPLAIN SELECT id FROM "${fresh}".messages WHERE queue = 'burst' AND done_at IS NULL AND visible_at <= now() ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`,
    );
    const plan = rows.map((row) => row["QUERY PLAN"]).join("\n");
    expect(plan).not.toMatch(/Sort|Bitmap/);
    expect(plan).toMatch(/Index Scan using messages_in_order/);
    const deliveries = await receiveN(broker.consumer("burst"), 100);
    expect(deliveries.map(read).slice(0, 2)).toEqual(["m1", "m2"]);
  });

  it("creates its schema once when many workers start at once on an empty database", async () => {
    const fresh = testSchema("wqueue_race");
    schemas.push(fresh);
    const brokers = Array.from({ length: 8 }, () => new PostgresBroker(schemaUrl(fresh)));
    cleanups.push(() => Promise.all(brokers.map((broker) => broker.close())));
    await Promise.all(brokers.map((broker) => broker.connect()));
    expect(await sql(`SELECT version FROM "${fresh}".migrations ORDER BY version`)).toEqual([{ version: 1 }, { version: 2 }]);
    await brokers[0]?.publish("q", [{ body: text("one") }]);
    const [delivery] = await receiveN(brokers[7]?.consumer("q") as Consumer, 1);
    expect(read(delivery)).toBe("one");
    await delivery?.ack();
  });

  it("takes messages published from any client with one SQL statement, waking a waiting consumer", async () => {
    const queue = queueName();
    const consumer = open().consumer(queue);
    const receiving = receiveN(consumer, 3);
    await new Promise((resolve) => setTimeout(resolve, 200)); // the consumer is waiting when the rows come
    await sql(`SELECT "${schema}".publish($1, '{"id":1}')`, [queue]);
    await sql(`SELECT "${schema}".publish($1, '{"id":2}', '{"x-source":"sql"}', 'k2')`, [queue]);
    await sql(`INSERT INTO "${schema}".messages (queue, body) VALUES ($1, convert_to('plain insert', 'UTF8'))`, [queue]);
    const got = await receiving;
    expect(got.map(read)).toEqual(['{"id":1}', '{"id":2}', "plain insert"]);
    expect(got[1]?.headers).toEqual({ "x-source": "sql" });
    expect(got[1]?.key).toBe("k2");
    await Promise.all(got.map((d) => d.ack()));
  });

  it("keeps a message published with a delay hidden until it is due", async () => {
    const queue = queueName();
    await sql(`SELECT "${schema}".publish($1, 'later', NULL, NULL, 1000)`, [queue]);
    const consumer = open().consumer(queue);
    expect(await consumer.receive(1, AbortSignal.timeout(500))).toEqual([]);
    const [delivery] = await receiveN(consumer, 1);
    expect(read(delivery)).toBe("later");
    await delivery?.ack();
  });

  it("app.publish inside the caller's transaction: delivered after COMMIT, never after ROLLBACK", async () => {
    const queue = queueName();
    const app = new WQueue({ broker: schemaUrl(schema) });
    cleanups.push(() => app.close());
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    cleanups.push(() => client.end());
    await client.query("CREATE TEMP TABLE orders (id int)");

    await client.query("BEGIN");
    await client.query("INSERT INTO orders VALUES (1)");
    await app.publish(queue, { order: 1 }, { transaction: client });
    // Not visible to anyone before the commit.
    expect(await rowsIn(queue)).toBe(0);
    await client.query("ROLLBACK");

    await client.query("BEGIN");
    await client.query("INSERT INTO orders VALUES (2)");
    const consumer = open().consumer(queue);
    const receiving = receiveN(consumer, 1);
    await app.publish(queue, { order: 2 }, { transaction: client });
    await client.query("COMMIT");
    const [delivery] = await receiving;
    expect(read(delivery)).toBe('{"order":2}');
    await delivery?.ack();
    expect(await consumer.receive(10, AbortSignal.timeout(500))).toEqual([]);
    expect((await client.query("SELECT id FROM orders")).rows).toEqual([{ id: 2 }]);
  });

  it("refuses { transaction } on a broker that cannot join it, and a non-client, with one line", async () => {
    const sqliteApp = new WQueue({ broker: `sqlite://${tempDir()}/q.db` });
    cleanups.push(() => sqliteApp.close());
    await expect(sqliteApp.publish("q", 1, { transaction: {} })).rejects.toThrow(/needs a broker that can join it/);
    const app = new WQueue({ broker: schemaUrl(schema) });
    cleanups.push(() => app.close());
    await expect(app.publish("q", 1, { transaction: "BEGIN" })).rejects.toThrow(ConfigError);
  });

  it("keeps acked rows for the retention period when asked, out of every queue view", async () => {
    const queue = queueName();
    const broker = open("retention=3600000");
    await broker.publish(queue, [{ body: text("kept") }]);
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    await delivery?.ack();
    await waitFor("the ack to land", async () => (await rowsIn(queue, "done_at IS NOT NULL")) === 1);
    expect(await broker.backlog(queue)).toBe(0);
    expect(await broker.browse(queue, 10)).toEqual([]);
    expect(await broker.consumer(queue).receive(10, AbortSignal.timeout(300))).toEqual([]);
  });

  it("an idle worker sends no query for 10 s (counted on node-postgres's own client), and still wakes at once", async () => {
    const queue = queueName();
    let queries = 0;
    const original = pg.Client.prototype.query;
    // A counter around the real client's method: every pooled and LISTEN connection goes through it.
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      queries += 1;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
    cleanups.push(async () => {
      pg.Client.prototype.query = original;
    });
    const app = new WQueue();
    const handled: unknown[] = [];
    app.listenEvents(queue, (message) => {
      handled.push(message.body);
    });
    const worker = new Worker(app, { broker: schemaUrl(schema), concurrency: 10, logger: createLogger("silent") });
    cleanups.push(() => worker.stop());
    await worker.start();
    const startup = queries;
    expect(startup).toBeGreaterThan(0); // the counter sees this worker's queries
    // Idle: its receive has looked once and now waits on LISTEN.
    await waitFor("the worker to settle", async () => {
      const before = queries;
      await new Promise((resolve) => setTimeout(resolve, 500));
      return queries === before;
    });
    const idleFrom = queries;
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    expect(queries - idleFrom).toBe(0);
    const publisher = open();
    await publisher.publish(queue, [{ body: text('{"n":1}') }]);
    await waitFor("the message handled", () => handled.length === 1, 3000);
  }, 30_000);

  it("wqueue dead-letters lists, replays and purges the dead-letter rows (CLI, built dist)", async () => {
    const queue = queueName();
    const url = schemaUrl(schema);
    const broker = open();
    await broker.publish(queue, [{ body: text('{"id":1}'), headers: { "x-origin": "test" } }, { body: text('{"id":2}') }]);
    for (const delivery of await receiveN(broker.consumer(queue), 2)) {
      await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: "bad" } });
    }
    const listed = await runCli(["dead-letters", "list", queue, "--broker", url, "--json"]);
    expect(listed.code).toBe(0);
    const rows = listed.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    expect(rows.map((r) => [r.queue, r.reason, r.error, r.attempts, r.body])).toEqual([
      [queue, "handler-failed", "TypeError: bad", 1, '{"id":1}'],
      [queue, "handler-failed", "TypeError: bad", 1, '{"id":2}'],
    ]);
    const replayed = await runCli(["dead-letters", "replay", queue, "--broker", url]);
    expect(replayed.stderr).toContain(`replayed 2 dead letter(s) from ${queue}.dead`);
    expect(await rowsIn(`${queue}.dead`)).toBe(0);
    const back = await broker.browse(queue, 10);
    expect(back.map((m) => read(m as unknown as Delivery))).toEqual(['{"id":1}', '{"id":2}']);
    expect(back[0]?.headers).toEqual({ "x-origin": "test" });

    const [again] = await receiveN(broker.consumer(queue), 1);
    await again?.deadLetter({ reason: "handler-failed" });
    const purged = await runCli(["dead-letters", "purge", queue, "--broker", url]);
    expect(purged.stderr).toContain("purged 1 dead letter(s)");
    expect(await rowsIn(`${queue}.dead`)).toBe(0);
  }, 60_000);

  it("reads wqueue's parameters off the URL and leaves the rest to node-postgres", () => {
    const config = parsePostgresUrl("postgresql://u:secret@db:5433/app?schema=jobs&lease=5000&poll=60000&retention=10&pool=3&sslmode=disable");
    expect(config).toEqual({
      connectionString: "postgresql://u:secret@db:5433/app?sslmode=disable",
      schema: "jobs",
      leaseMs: 5000,
      pollMs: 60000,
      retentionMs: 10,
      poolSize: 3,
    });
    expect(() => parsePostgresUrl("postgres://u:secret@db/app?schema=Bad-Name")).toThrow(ConfigError);
    expect(() => parsePostgresUrl("postgres://u:secret@db/app?lease=0")).toThrow(/lease=0 must be >= 1/);
  });

  it("stops with one line when the user may not create the schema", async () => {
    const role = testSchema("wqueue_noperm");
    await sql(`CREATE ROLE ${role} LOGIN`);
    cleanups.push(() => sql(`DROP ROLE IF EXISTS ${role}`));
    const broker = new PostgresBroker(`${POSTGRES_URL.replace("postgres@", `${role}@`)}?schema=${testSchema()}`);
    cleanups.push(() => broker.close());
    const failure = broker.connect();
    await expect(failure).rejects.toThrow(ConfigError);
    await expect(failure).rejects.toThrow(/cannot set up schema "wqueue_test_\w+": permission denied for database test/);
  });

  it("says which server it could not reach, without the password", async () => {
    const broker = await createBroker("postgres://postgres:hunter2@127.0.0.1:1/test");
    cleanups.push(() => broker.close());
    const failure = broker.connect();
    await expect(failure).rejects.toThrow(/cannot connect to PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test/);
    await expect(failure).rejects.not.toThrow(/hunter2/);
    const spelledOut = await createBroker("postgresql://postgres:hunter2@127.0.0.1:1/test");
    cleanups.push(() => spelledOut.close());
    expect([spelledOut.kind, spelledOut.url]).toEqual(["postgres", "postgresql://postgres:***@127.0.0.1:1/test"]);
  });
});
