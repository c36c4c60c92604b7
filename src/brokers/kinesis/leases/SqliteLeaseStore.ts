import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { BrokerUnreachableError } from "../../../errors.js";
import { openSqliteDatabase } from "../../shared/sqlite-database.js";
import { parseSqliteUrl } from "../../shared/sqlite-url.js";
import { redactUrl } from "../../url.js";
import type { LeaseInfo, LeaseStore, ShardCheckpoint } from "./LeaseStore.js";

/**
 * Leases and checkpoints in one SQLite file (`sqlite://leases.db`, `sqlite:///abs/leases.db`, as
 * the SQLite broker reads its URL), shared by the worker processes of one machine. The clock is
 * that machine's (`Date.now()`). A lease row is held while `owner` is set and `expires_at > now`;
 * a release clears `owner` and keeps the checkpoint columns, which nothing ever clears.
 *
 * Each conditional write is one UPDATE (or upsert) whose WHERE carries the owner check, so it is
 * atomic across processes; heartbeat, the one read-modify-write, runs in a BEGIN IMMEDIATE
 * transaction. WAL lets readers go on while one process writes; busy_timeout makes a writer wait
 * for the lock instead of failing.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS wqueue_kinesis_leases (
  app TEXT NOT NULL,
  stream TEXT NOT NULL,
  shard TEXT NOT NULL,
  owner TEXT,                              -- NULL when released (or never held)
  expires_at INTEGER NOT NULL DEFAULT 0,   -- ms since the epoch
  sequence TEXT,                           -- NULL until the first checkpoint
  metadata TEXT,
  PRIMARY KEY (app, stream, shard)
);
CREATE TABLE IF NOT EXISTS wqueue_kinesis_workers (
  app TEXT NOT NULL,
  stream TEXT NOT NULL,
  worker TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (app, stream, worker)
);
`;
/** Shard lists are bound as one JSON array, so any number of them fits one prepared statement. */
const SHARDS = "shard IN (SELECT value FROM json_each(@shards))";
const SCOPE = "app = @app AND stream = @stream";

interface LeaseRow {
  shard: string;
  owner: string | null;
  expires_at: number;
  sequence: string | null;
  metadata: string | null;
}

export class SqliteLeaseStore implements LeaseStore {
  /** Redacted: the only form that goes into messages. */
  readonly url: string;
  readonly #path: string;
  readonly #app: string;
  #db: Statements | undefined;
  #closed = false;

  constructor(url: string, app: string) {
    this.url = redactUrl(url);
    this.#path = parseSqliteUrl(url).path;
    this.#app = app;
  }

  async connect(): Promise<void> {
    this.#open();
  }

  async heartbeat(stream: string, worker: string, ttlMs: number): Promise<string[]> {
    const db = this.#open();
    const now = Date.now();
    const params = { app: this.#app, stream, worker, now, until: now + wholeMs(ttlMs) };
    return db.heartbeat(params);
  }

  async read(stream: string, shardIds: string[]): Promise<Map<string, LeaseInfo>> {
    const result = new Map<string, LeaseInfo>();
    for (const shard of shardIds) result.set(shard, { owner: undefined, checkpoint: undefined });
    if (shardIds.length === 0) return result;
    const now = Date.now();
    const rows = this.#open().read.all({ app: this.#app, stream, shards: JSON.stringify(shardIds) }) as unknown as LeaseRow[];
    for (const row of rows) {
      result.set(row.shard, {
        owner: row.owner !== null && row.expires_at > now ? row.owner : undefined,
        checkpoint: row.sequence === null ? undefined : { sequence: row.sequence, metadata: row.metadata },
      });
    }
    return result;
  }

  async acquire(stream: string, shardId: string, worker: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const params = { app: this.#app, stream, shard: shardId, worker, now, until: now + wholeMs(ttlMs) };
    return this.#open().acquire.run(params).changes === 1;
  }

  async renew(stream: string, shardIds: string[], worker: string, ttlMs: number): Promise<string[]> {
    if (shardIds.length === 0) return [];
    const now = Date.now();
    const params = { app: this.#app, stream, worker, now, until: now + wholeMs(ttlMs), shards: JSON.stringify(shardIds) };
    const held = new Set(this.#open().renew.all(params).map((row) => row.shard as string));
    return shardIds.filter((shard) => held.has(shard));
  }

  async checkpoint(stream: string, shardId: string, worker: string, checkpoint: ShardCheckpoint): Promise<boolean> {
    const params = {
      app: this.#app,
      stream,
      shard: shardId,
      worker,
      now: Date.now(),
      sequence: checkpoint.sequence,
      metadata: checkpoint.metadata,
    };
    return this.#open().checkpoint.run(params).changes === 1;
  }

  async release(stream: string, shardId: string, worker: string): Promise<void> {
    this.#open().release.run({ app: this.#app, stream, shard: shardId, worker });
  }

  async leave(stream: string, worker: string): Promise<void> {
    this.#open().leave.run({ app: this.#app, stream, worker });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#db?.db.close();
    this.#db = undefined;
  }

  /** Opens the file on first use (so every method works without connect()). */
  #open(): Statements {
    if (this.#closed) throw new Error(`lease store ${this.url} is closed`);
    if (this.#db === undefined) {
      try {
        this.#db = prepare(this.#path);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        throw new BrokerUnreachableError(`cannot open SQLite lease store ${this.url}: ${why}`, { cause: error });
      }
    }
    return this.#db;
  }
}

/** Same rule as the Redis store, so both refuse a ttl that would make a lease expire at once. */
function wholeMs(ttlMs: number): number {
  const ms = Math.ceil(ttlMs);
  if (!(ms >= 1)) throw new RangeError(`lease ttl must be at least 1 ms, got ${ttlMs}`);
  return ms;
}

type Statements = ReturnType<typeof prepare>;

function prepare(path: string) {
  mkdirSync(dirname(path), { recursive: true });
  const db = openSqliteDatabase(path, { busyTimeoutMs: 5000 });
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec(SCHEMA);
    const expire = db.prepare(`DELETE FROM wqueue_kinesis_workers WHERE ${SCOPE} AND expires_at <= @now`);
    const announce = db.prepare(
      `INSERT INTO wqueue_kinesis_workers (app, stream, worker, expires_at) VALUES (@app, @stream, @worker, @until)
       ON CONFLICT (app, stream, worker) DO UPDATE SET expires_at = excluded.expires_at`,
    );
    const live = db.prepare(`SELECT worker FROM wqueue_kinesis_workers WHERE ${SCOPE} ORDER BY worker`);
    return {
      db,
      heartbeat: (params: Record<string, unknown>): string[] =>
        db.immediate(() => {
          expire.run(params);
          announce.run(params);
          return live.all(params).map((row) => row.worker as string);
        }),
      read: db.prepare(
        `SELECT shard, owner, expires_at, sequence, metadata FROM wqueue_kinesis_leases WHERE ${SCOPE} AND ${SHARDS}`,
      ),
      // Takes the row when free, expired or already ours; `changes` is 0 when the WHERE refused.
      acquire: db.prepare(
        `INSERT INTO wqueue_kinesis_leases (app, stream, shard, owner, expires_at) VALUES (@app, @stream, @shard, @worker, @until)
         ON CONFLICT (app, stream, shard) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE owner IS NULL OR owner = excluded.owner OR expires_at <= @now`,
      ),
      renew: db.prepare(
        `UPDATE wqueue_kinesis_leases SET expires_at = @until
         WHERE ${SCOPE} AND ${SHARDS} AND owner = @worker AND expires_at > @now RETURNING shard`,
      ),
      checkpoint: db.prepare(
        `UPDATE wqueue_kinesis_leases SET sequence = @sequence, metadata = @metadata
         WHERE ${SCOPE} AND shard = @shard AND owner = @worker AND expires_at > @now`,
      ),
      release: db.prepare(
        `UPDATE wqueue_kinesis_leases SET owner = NULL, expires_at = 0 WHERE ${SCOPE} AND shard = @shard AND owner = @worker`,
      ),
      leave: db.prepare(`DELETE FROM wqueue_kinesis_workers WHERE ${SCOPE} AND worker = @worker`),
    };
  } catch (error) {
    db.close();
    throw error;
  }
}
