import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { BrokerUnreachableError } from "../errors.js";
import { openSqliteDatabase, type SqliteDatabase, type SqliteStatement } from "../brokers/shared/sqlite-database.js";
import { parseSqliteUrl } from "../brokers/shared/sqlite-url.js";
import { redactUrl } from "../brokers/url.js";
import type { Admission, CoordinationStore, RateLimit } from "./CoordinationStore.js";
import { gcraAdmit, gcraParams } from "./gcra.js";

/**
 * The coordination store in a SQLite file (`sqlite://...`, the broker's own file when the broker is
 * SQLite), for the worker processes of one machine; the clock is that machine's. One table of
 * (key, value, expires_at): a row past `expires_at` counts as absent. Each read-modify-write runs
 * in one BEGIN IMMEDIATE transaction, so it is atomic across processes.
 */
const SCHEMA = `CREATE TABLE IF NOT EXISTS wqueue_flow (
  key TEXT PRIMARY KEY,
  value REAL NOT NULL,
  expires_at INTEGER NOT NULL   -- ms since the epoch
)`;

export class SqliteCoordinationStore implements CoordinationStore {
  readonly url: string;
  readonly #path: string;
  #statements: ReturnType<typeof prepare> | undefined;
  #closed = false;

  constructor(url: string) {
    this.url = redactUrl(url);
    this.#path = parseSqliteUrl(url).path;
  }

  async admit(queue: string, want: number, limit: RateLimit | undefined): Promise<Admission> {
    const s = this.#open();
    const now = Date.now();
    if (limit === undefined) {
      const paused = s.read(`paused:${queue}`, now);
      return paused > now ? { granted: 0, waitMs: Math.ceil(paused - now) } : { granted: want, waitMs: 0 };
    }
    return s.db.immediate(() => {
      const paused = s.read(`paused:${queue}`, now);
      if (paused > now) return { granted: 0, waitMs: Math.ceil(paused - now) };
      const { granted, waitMs, tat } = gcraAdmit(s.read(`tat:${queue}`, now), now, want, limit);
      if (granted > 0) s.write(`tat:${queue}`, tat, Math.ceil(tat) + 1000);
      return { granted, waitMs };
    });
  }

  async refund(queue: string, count: number, limit: RateLimit): Promise<void> {
    if (count <= 0) return;
    const s = this.#open();
    const now = Date.now();
    s.db.immediate(() => {
      const tat = s.read(`tat:${queue}`, now) - count * gcraParams(limit).interval;
      s.write(`tat:${queue}`, tat, Math.ceil(Math.max(tat, now)) + 1000);
    });
  }

  async pause(queue: string, ms: number): Promise<void> {
    if (ms < 1) return;
    const s = this.#open();
    const now = Date.now();
    const until = now + Math.ceil(ms);
    s.db.immediate(() => {
      if (s.read(`paused:${queue}`, now) < until) s.write(`paused:${queue}`, until, until);
    });
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const s = this.#open();
    const now = Date.now();
    return s.db.immediate(() => {
      s.expire.run({ now });
      return s.claim.run({ key: `lease:${key}`, until: now + Math.max(1, Math.ceil(ttlMs)) }).changes === 1;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#statements?.db.close();
    this.#statements = undefined;
  }

  /** Opens the file on first use. */
  #open(): ReturnType<typeof prepare> {
    if (this.#closed) throw new Error(`coordination store ${this.url} is closed`);
    if (this.#statements === undefined) {
      try {
        this.#statements = prepare(this.#path);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        throw new BrokerUnreachableError(`cannot open SQLite coordination store ${this.url}: ${why}`, { cause: error });
      }
    }
    return this.#statements;
  }
}

function prepare(path: string) {
  mkdirSync(dirname(path), { recursive: true });
  const db: SqliteDatabase = openSqliteDatabase(path, { busyTimeoutMs: 5000 });
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(SCHEMA);
    const get: SqliteStatement = db.prepare("SELECT value FROM wqueue_flow WHERE key = @key AND expires_at > @now");
    const put = db.prepare(
      `INSERT INTO wqueue_flow (key, value, expires_at) VALUES (@key, @value, @until)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
    );
    return {
      db,
      /** The row's value, 0 when absent or expired. */
      read: (key: string, now: number): number => (get.get({ key, now })?.value as number | undefined) ?? 0,
      write: (key: string, value: number, until: number): void => void put.run({ key, value, until }),
      expire: db.prepare("DELETE FROM wqueue_flow WHERE expires_at <= @now AND key LIKE 'lease:%'"),
      // Inserted only when absent: expired leases were deleted just before, in the same transaction.
      claim: db.prepare("INSERT INTO wqueue_flow (key, value, expires_at) VALUES (@key, 1, @until) ON CONFLICT (key) DO NOTHING"),
    };
  } catch (error) {
    db.close();
    throw error;
  }
}
