/**
 * Throughput of wqueue on PostgreSQL against pg-boss's worker and a raw node-postgres claim loop,
 * on the same server in the same run:
 *   (a) raw `pg`, at most once: `DELETE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT B)
 *       RETURNING`: one statement per batch, about the least one connection can do;
 *   (b) raw `pg`, at least once: BEGIN, `SELECT ... FOR UPDATE SKIP LOCKED LIMIT B`, the no-op
 *       handlers, `DELETE ... WHERE id = ANY($1)`, COMMIT: the textbook claim loop, on a default
 *       connection (synchronous commit: one WAL flush per batch);
 *   (d) raw `pg`, at least once under a lease, the fair equivalent of (c): (b) holds a transaction
 *       (and its row locks) open while the batch is handled, so a consumer that dies gives its rows
 *       back at once but a handler cannot outlive the transaction, and a nack cannot be delayed.
 *       (d) claims as the adapter does, in one autocommitted `UPDATE ... SET visible_at = now() +
 *       lease, attempt = attempt + 1, receipt = $r WHERE id IN (SELECT ... SKIP LOCKED) RETURNING`,
 *       then deletes the batch with `DELETE ... WHERE id = ANY($1) AND receipt = $r`, on a table
 *       with the same lease columns, with synchronous_commit = off as the adapter's consumer side;
 *   (c) the wqueue adapter driven as the worker drives it: receive(B), a no-op async handler and
 *       ack() per delivery (the acks of one turn are one DELETE), awaited before the next receive;
 *   (w) the full wqueue worker (WQueue + Worker, concurrency B, JSON decoding);
 *   (p) pg-boss's worker: work(queue, { batchSize: B }) with a no-op handler (its fastest single
 *       worker: one fetch and one completion per batch), maintenance and scheduling off.
 * Beside the rates, the WAL the server wrote per message in each case: it does not move with the
 * machine's load, and it is what a lease costs (b: a row lock and a delete; c, d: a new row
 * version per claim, then a delete; c's table keeps pages half free so those are HOT updates).
 * B = BENCH_BATCH (default 100). Each case consumes a freshly preloaded queue (preloading not
 * timed) after an unmeasured warm-up; rounds are interleaved; medians are reported, with the
 * ratios the issue asks for: (w) / (p) (target >= 2x) and (c) / (b) (target >= 1.0x).
 * Schemas `wqueue_bench_<run>` and `pgboss_bench_<run>` are dropped at the end.
 *
 *   npm run bench:postgres                      # 50,000 messages, batch 100, 3 rounds
 *   BENCH_MESSAGES=20000 BENCH_ROUNDS=5 BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:postgres
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import pg from "pg";
import PgBoss from "pg-boss";
import type { Delivery } from "../src/brokers/contract.js";
import { PostgresBroker } from "../src/brokers/postgres/PostgresBroker.js";
import { interleavedRounds, machineLoad, median, ratioAtLeast, type Sample, summarize, timed, within } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
const BASE = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const WARMUP = Math.min(10_000, Math.ceil(N / 5));
// Schemas of this run only, dropped at the end: two runs at once do not meet.
const RUN = randomUUID().replaceAll("-", "").slice(0, 8);
const SCHEMA = `wqueue_bench_${RUN}`;
const BOSS_SCHEMA = `pgboss_bench_${RUN}`;
const RAW_TABLE = `${SCHEMA}.raw_jobs`;
const LEASED_TABLE = `${SCHEMA}.raw_leased_jobs`;
const body = (i: number) => `{"event":"signup","n":${i}}`;
const noop = async (_message: unknown): Promise<void> => {};

const admin = new pg.Client({ connectionString: BASE });
const broker = new PostgresBroker(`${BASE}?schema=${SCHEMA}`);
let boss: PgBoss;

interface Case {
  name: string;
  preload(count: number): Promise<string>;
  /** Starts consuming `count` messages of `queue`; resolves when it is set up, `consume` runs the clock. */
  start(queue: string, count: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
  left(queue: string): Promise<number>;
}

const newQueue = () => `bench.${randomUUID().slice(0, 8)}`;

async function preloadWqueue(count: number): Promise<string> {
  const queue = newQueue();
  for (let start = 0; start < count; start += 5000) {
    const bodies = Array.from({ length: Math.min(5000, count - start) }, (_, i) => ({ body: Buffer.from(body(start + i)) }));
    await broker.publish(queue, bodies);
  }
  return queue;
}

async function wqueueLeft(queue: string): Promise<number> {
  // Acks are one statement per turn: wait for the last ones to land.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const { rows } = await admin.query(`SELECT count(*) AS n FROM "${SCHEMA}".messages WHERE queue = $1`, [queue]);
  return Number(rows[0].n);
}

async function preloadRaw(count: number): Promise<string> {
  const queue = newQueue();
  await admin.query(`INSERT INTO ${RAW_TABLE} (queue, body) SELECT $1, '{"event":"signup","n":' || i || '}' FROM generate_series(1, $2) AS i`, [queue, count]);
  return queue;
}

async function rawLeft(queue: string): Promise<number> {
  const { rows } = await admin.query(`SELECT count(*) AS n FROM ${RAW_TABLE} WHERE queue = $1`, [queue]);
  return Number(rows[0].n);
}

/** A raw loop on one connection of its own (`options`: its session settings). */
const raw = (
  name: string,
  step: (client: pg.Client, queue: string) => Promise<number>,
  table = { preload: preloadRaw, left: rawLeft },
  options?: string,
): Case => ({
  name,
  ...table,
  async start(queue, count) {
    const client = new pg.Client({ connectionString: BASE, options });
    await client.connect();
    const consume = async () => {
      for (let got = 0; got < count; ) {
        const n = await step(client, queue);
        if (n === 0) throw new Error("the claim found an empty queue: drained early");
        got += n;
      }
    };
    return { consume, stop: () => client.end() };
  },
});

const rawAtMostOnce = raw("(a) raw `pg`: DELETE ... SKIP LOCKED RETURNING (at most once)", async (client, queue) => {
  const { rows } = await client.query({
    name: "raw-delete",
    text: `DELETE FROM ${RAW_TABLE} WHERE id IN (SELECT id FROM ${RAW_TABLE} WHERE queue = $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, body`,
    values: [queue, BATCH],
  });
  for (const row of rows) await noop(row);
  return rows.length;
});

const rawAtLeastOnce = raw("(b) raw `pg`: BEGIN, SELECT ... SKIP LOCKED, DELETE, COMMIT", async (client, queue) => {
  await client.query("BEGIN");
  const { rows } = await client.query({
    name: "raw-select",
    text: `SELECT id, body FROM ${RAW_TABLE} WHERE queue = $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
    values: [queue, BATCH],
  });
  await Promise.all(rows.map((row) => noop(row)));
  await client.query({ name: "raw-ack", text: `DELETE FROM ${RAW_TABLE} WHERE id = ANY($1)`, values: [rows.map((row) => row.id)] });
  await client.query("COMMIT");
  return rows.length;
});

const leasedTable = {
  async preload(count: number): Promise<string> {
    const queue = newQueue();
    await admin.query(`INSERT INTO ${LEASED_TABLE} (queue, body) SELECT $1, convert_to('{"event":"signup","n":' || i || '}', 'UTF8') FROM generate_series(1, $2) AS i`, [
      queue,
      count,
    ]);
    return queue;
  },
  async left(queue: string): Promise<number> {
    const { rows } = await admin.query(`SELECT count(*) AS n FROM ${LEASED_TABLE} WHERE queue = $1`, [queue]);
    return Number(rows[0].n);
  },
};

const rawLeased = raw(
  "(d) raw `pg`: UPDATE lease ... SKIP LOCKED RETURNING, DELETE",
  async (client, queue) => {
    const receipt = randomUUID();
    const { rows } = await client.query({
      name: "raw-lease",
      text: `UPDATE ${LEASED_TABLE} SET visible_at = now() + $3 * interval '1 millisecond', attempt = attempt + 1, receipt = $4
             WHERE id IN (SELECT id FROM ${LEASED_TABLE} WHERE queue = $1 AND visible_at <= now() ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, body, attempt`,
      values: [queue, BATCH, 30_000, receipt],
    });
    await Promise.all(rows.map((row) => noop(row)));
    await client.query({ name: "raw-leased-ack", text: `DELETE FROM ${LEASED_TABLE} WHERE id = ANY($1) AND receipt = $2`, values: [rows.map((row) => row.id), receipt] });
    return rows.length;
  },
  leasedTable,
  "-c synchronous_commit=off",
);

const adapter: Case = {
  name: "(c) wqueue adapter: receive + ack",
  preload: preloadWqueue,
  left: wqueueLeft,
  async start(queue, count) {
    const consumer = broker.consumer(queue);
    const signal = AbortSignal.timeout(600_000);
    const consume = async () => {
      for (let got = 0; got < count; ) {
        const deliveries = await consumer.receive(BATCH, signal);
        await Promise.all(deliveries.map((delivery: Delivery) => noop(delivery).then(() => delivery.ack())));
        got += deliveries.length;
      }
    };
    return { consume, stop: () => consumer.close() };
  },
};

/** Resolves `first` at the first message and `last` at the count-th. */
function milestones(count: number) {
  let handled = 0;
  const seen = { first: () => {}, last: () => {} };
  const first = new Promise<void>((resolve) => {
    seen.first = resolve;
  });
  const last = new Promise<void>((resolve) => {
    seen.last = resolve;
  });
  const tick = (n = 1) => {
    if (handled === 0) seen.first();
    handled += n;
    if (handled >= count) seen.last();
  };
  return { first, last, tick };
}

/** Both workers' clocks start at their first message, after their start-up. */
const worker: Case = {
  name: "(w) wqueue worker",
  preload: preloadWqueue,
  left: wqueueLeft,
  async start(queue, count) {
    const [{ WQueue }, { Worker }, { createLogger }] = await Promise.all([
      import("../src/app/WQueue.js"),
      import("../src/worker/Worker.js"),
      import("../src/log/logger.js"),
    ]);
    const app = new WQueue();
    const progress = milestones(count);
    app.listenEvents(queue, () => progress.tick());
    const running = new Worker(app, { broker: `${BASE}?schema=${SCHEMA}`, concurrency: BATCH, logger: createLogger("silent") });
    await running.start();
    await within(progress.first, 10_000, "the wqueue worker's first message");
    return { consume: () => within(progress.last, 600_000, "the wqueue worker's last message"), stop: () => running.stop() };
  },
};

const pgBoss: Case = {
  name: "(p) pg-boss worker, batchSize B",
  async preload(count) {
    const queue = `bench-${randomUUID().slice(0, 8)}`;
    await boss.createQueue(queue);
    for (let start = 0; start < count; start += 5000) {
      await boss.insert(Array.from({ length: Math.min(5000, count - start) }, (_, i) => ({ name: queue, data: { event: "signup", n: start + i } })));
    }
    return queue;
  },
  async left(queue) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { rows } = await admin.query(`SELECT count(*) AS n FROM "${BOSS_SCHEMA}".job WHERE name = $1 AND state <> 'completed'`, [queue]);
    return Number(rows[0].n);
  },
  async start(queue, count) {
    const progress = milestones(count);
    const id = await boss.work(queue, { batchSize: BATCH, pollingIntervalSeconds: 0.5 }, async (jobs) => {
      for (const job of jobs) await noop(job);
      progress.tick(jobs.length);
    });
    await within(progress.first, 10_000, "pg-boss's first message");
    return {
      consume: () => within(progress.last, 600_000, "pg-boss's last message"),
      // Its queues go with its schema at the end.
      stop: () => boss.offWork(id),
    };
  },
};

/**
 * WAL bytes the server wrote per consumed message, per case and round: unlike the rates it does not
 * depend on the machine's load, and it shows what each loop writes (a lease is a new row version).
 * Server-wide: another client writing meanwhile would count too.
 */
const walPerMessage = new Map<Case, number[]>();
const walPosition = async () => (await admin.query("SELECT pg_current_wal_insert_lsn() AS lsn")).rows[0].lsn as string;

async function measure(test: Case, count: number, recordWal = false) {
  const queue = await test.preload(count);
  const run = await test.start(queue, count);
  // The workers have handled their first message by now: time the rest.
  const measured = test === worker || test === pgBoss ? count - 1 : count;
  const walBefore = await walPosition();
  const sample = await timed(measured, run.consume);
  await run.stop();
  const left = await test.left(queue);
  if (left !== 0) throw new Error(`${test.name}: ${left} messages left unacked in ${queue}`);
  if (recordWal) {
    const { rows } = await admin.query("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1) AS bytes", [walBefore]);
    walPerMessage.set(test, [...(walPerMessage.get(test) ?? []), Number(rows[0].bytes) / measured]);
  }
  return sample;
}

/** Median over rounds of x/y within each round: the two ran back to back, under the same load. */
function pairedRatio(cases: Case[], samples: Sample[][], x: string, y: string, what: string, least: number): string {
  const [xs, ys] = [x, y].map((letter) => samples[cases.findIndex((test) => test.name[1] === letter)]);
  if (!xs || !ys) return "n/a (not run)";
  return ratioAtLeast(what, median(xs.map((sample, round) => sample.rate / (ys[round]?.rate ?? Number.NaN))), least);
}

async function main(): Promise<void> {
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`PostgreSQL is not reachable at ${BASE} (${(error as Error).message})`);
  }
  await broker.connect();
  await admin.query(`CREATE TABLE IF NOT EXISTS ${RAW_TABLE} (id bigserial PRIMARY KEY, queue text NOT NULL, body text NOT NULL)`);
  await admin.query(`CREATE INDEX IF NOT EXISTS raw_jobs_in_order ON ${RAW_TABLE} (queue, id)`);
  await admin.query(`CREATE TABLE IF NOT EXISTS ${LEASED_TABLE} (id bigserial PRIMARY KEY, queue text NOT NULL, body bytea NOT NULL,
    attempt integer NOT NULL DEFAULT 0, visible_at timestamptz NOT NULL DEFAULT now(), receipt uuid)`);
  await admin.query(`CREATE INDEX IF NOT EXISTS raw_leased_jobs_in_order ON ${LEASED_TABLE} (queue, id)`);
  boss = new PgBoss({ connectionString: BASE, schema: BOSS_SCHEMA, supervise: false, schedule: false });
  boss.on("error", (error) => process.stderr.write(`pg-boss: ${error.message}\n`));
  await boss.start();
  const cases = [rawAtMostOnce, rawAtLeastOnce, rawLeased, adapter, worker, pgBoss];
  // BENCH_CASES=abc runs only those (the ratios then need their cases).
  const only = process.env.BENCH_CASES;
  if (only) cases.splice(0, cases.length, ...cases.filter((test) => only.includes(test.name[1] as string)));
  const samples = await interleavedRounds(cases, ROUNDS, (test) => measure(test, WARMUP), (test) => measure(test, N, true));
  const { rows } = summarize(cases, samples);
  const version = (await admin.query("SHOW server_version")).rows[0].server_version;
  console.log(`### PostgreSQL: wqueue against pg-boss and raw node-postgres loops

${N.toLocaleString("en-US")} messages of about ${body(N).length} bytes, batch ${BATCH}, one consumer each, median of ${ROUNDS} interleaved rounds
after a ${WARMUP.toLocaleString("en-US")}-message warm-up; PostgreSQL ${version} on loopback, Node ${process.version},
${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with the server).
${machineLoad()}

| Consumer | msgs/s (median) | range | CPU µs/msg (client) |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

WAL written per message (median over rounds, the whole server's): ${cases.map((test) => `${test.name.slice(0, 3)} ${Math.round(median(walPerMessage.get(test) ?? [Number.NaN]))} B`).join(", ")}.

Paired per round (median of the rounds' ratios):
- wqueue worker (w) / pg-boss worker (p): ${pairedRatio(cases, samples, "w", "p", "PostgreSQL worker / pg-boss worker", 2)}
- wqueue adapter (c) / raw at-least-once loop (b): ${pairedRatio(cases, samples, "c", "b", "PostgreSQL adapter / raw pg claim loop", 1)}
- wqueue adapter (c) / raw leased loop (d): ${pairedRatio(cases, samples, "c", "d", "PostgreSQL adapter / raw pg lease loop", 1)}
`);
}

main()
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(async () => {
    await boss?.stop({ graceful: false, wait: true }).catch(() => {});
    await broker.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`).catch(() => {});
    await admin.query(`DROP SCHEMA IF EXISTS "${BOSS_SCHEMA}" CASCADE`).catch(() => {});
    await admin.end();
  });
