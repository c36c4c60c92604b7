import type { Pool, PoolClient } from "pg";
import type { Headers, OutgoingMessage } from "../contract.js";

/** What a claim hands back for one row. */
export interface ClaimedRow {
  id: string;
  body: Uint8Array;
  headers: Headers;
  key: string | undefined;
  /** Deliveries so far, this one included. */
  attempt: number;
}

/** One delivery of one row: settles match both, so a stale holder changes nothing. */
export interface Held {
  id: string;
  receipt: string;
}

/** Anything node-postgres can run a query on: the pool, or a caller's client inside its transaction. */
export type Queryable = Pick<Pool | PoolClient, "query">;

interface StoredRow {
  id: string;
  body: Buffer;
  headers: Record<string, unknown> | null;
  key: string | null;
  attempt: number;
}

/**
 * The SQL behind a PostgresBroker (the table is described in migrations.ts). Hot statements are
 * named, so each pooled connection parses them once; the names carry the schema, since a caller's
 * own client (transactional publish) may talk to brokers of several schemas. The two that pick rows
 * by queue (claim, next due) are not: see claim().
 */
export class MessageTable {
  readonly #s: string;
  readonly #name: (what: string) => string;

  constructor(
    readonly pool: Pool,
    readonly schema: string,
  ) {
    this.#s = `"${schema}".messages`;
    this.#name = (what) => `wqueue_${what}_${schema}`;
  }

  /** One statement for the batch; the insert trigger notifies the queue's listeners on commit. */
  async insert(queue: string, messages: readonly OutgoingMessage[], via: Queryable = this.pool): Promise<void> {
    await via.query({
      name: this.#name("insert"),
      text: `INSERT INTO ${this.#s} (queue, body, headers, key, attempt, visible_at)
             SELECT $1, b, h, k, a, now() + d * interval '1 millisecond'
             FROM unnest($2::bytea[], $3::jsonb[], $4::text[], $5::int[], $6::bigint[]) AS t(b, h, k, a, d)`,
      values: [
        queue,
        messages.map(({ body }) => Buffer.from(body.buffer, body.byteOffset, body.byteLength)),
        messages.map(({ headers }) => (headers && Object.keys(headers).length > 0 ? JSON.stringify(headers) : null)),
        messages.map(({ key }) => key ?? null),
        messages.map(({ attempt }) => Math.max(0, (attempt ?? 1) - 1)),
        messages.map(({ delayMs }) => Math.max(0, Math.floor(delayMs ?? 0))),
      ],
    });
  }

  /**
   * Claims up to `max` ready rows in id order, hidden for `leaseMs` under `receipt`, in one
   * statement. SKIP LOCKED: concurrent claimers take disjoint rows instead of queueing on a lock.
   * Unnamed on purpose, so planned for its queue and batch size every time: a named statement may
   * switch to a generic plan (after five runs, typically while the table is small), which knows
   * neither, claims through the primary key past every row of the other queues and joins the update
   * through a scan of the whole table (about 100 ms a claim beside another queue's 100,000 rows).
   * A claim takes about 0.3 ms to plan, which a named statement's custom plans paid as well.
   */
  async claim(queue: string, max: number, leaseMs: number, receipt: string): Promise<ClaimedRow[]> {
    const { rows } = await this.pool.query<StoredRow>({
      text: `WITH picked AS (
               SELECT id FROM ${this.#s}
               WHERE queue = $1 AND done_at IS NULL AND visible_at <= now()
               ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE ${this.#s} AS m
             SET visible_at = now() + $3 * interval '1 millisecond', attempt = m.attempt + 1, receipt = $4
             FROM picked WHERE m.id = picked.id
             RETURNING m.id, m.body, m.headers, m.key, m.attempt`,
      values: [queue, max, leaseMs, receipt],
    });
    // RETURNING gives no order guarantee; ids are bigint strings.
    return rows.sort((a, b) => compareIds(a.id, b.id)).map(decodeRow);
  }

  /**
   * Milliseconds until the queue's next row becomes ready (delayed, leased), undefined if none.
   * Unnamed, as claim() and for the same reason: its generic plan is a scan of the whole table.
   */
  async msUntilNextReady(queue: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ ms: number | null }>({
      text: `SELECT extract(epoch FROM min(visible_at) - now()) * 1000 AS ms FROM ${this.#s} WHERE queue = $1 AND done_at IS NULL`,
      values: [queue],
    });
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? undefined : Math.max(0, Number(ms));
  }

  /**
   * Acks: deletes (or, with retention, marks done) each row still held under its receipt. The
   * acks of one turn are mostly one claim's, under one receipt: then the statement takes the ids
   * and that receipt (`id = ANY`, half the parameters to encode); mixed receipts go as pairs.
   */
  async finish(held: readonly Held[], retain: boolean): Promise<void> {
    const receipt = held[0]?.receipt;
    const oneReceipt = held.every((h) => h.receipt === receipt);
    const where = oneReceipt ? "id = ANY($1::bigint[]) AND receipt = $2::uuid" : "(id, receipt) IN (SELECT * FROM unnest($1::bigint[], $2::uuid[]))";
    await this.pool.query({
      name: this.#name(`${retain ? "done" : "delete"}${oneReceipt ? "_one" : ""}`),
      text: retain
        ? `UPDATE ${this.#s} SET done_at = now(), receipt = NULL WHERE ${where}`
        : `DELETE FROM ${this.#s} WHERE ${where}`,
      values: [held.map((h) => h.id), oneReceipt ? receipt : held.map((h) => h.receipt)],
    });
  }

  /** Nack, or give back on close: ready again after `delayMs` if still held; wakes the queue. */
  async release(queue: string, held: readonly Held[], delayMs: number): Promise<void> {
    await this.pool.query({
      name: this.#name("release"),
      text: `WITH released AS (
               UPDATE ${this.#s} SET visible_at = now() + $3 * interval '1 millisecond', receipt = NULL
               WHERE (id, receipt) IN (SELECT * FROM unnest($1::bigint[], $2::uuid[])) RETURNING 1)
             SELECT pg_notify($4, $5) FROM (SELECT 1 FROM released LIMIT 1) AS r`,
      values: [held.map((h) => h.id), held.map((h) => h.receipt), delayMs, this.schema, queue],
    });
  }

  /**
   * Pushes each held row's lease to `leaseMs` from now. A settle clears the receipt, so an
   * extension that runs after (or waits on the row lock behind) a settle matches nothing.
   */
  async extend(held: readonly Held[], leaseMs: number): Promise<void> {
    await this.pool.query({
      name: this.#name("extend"),
      text: `UPDATE ${this.#s} SET visible_at = now() + $3 * interval '1 millisecond'
             WHERE (id, receipt) IN (SELECT * FROM unnest($1::bigint[], $2::uuid[]))`,
      values: [held.map((h) => h.id), held.map((h) => h.receipt), leaseMs],
    });
  }

  /** Moves a held row to `deadQueue` as a new row, in one statement; nothing if no longer held. */
  async deadLetter(held: Held, deadQueue: string, message: OutgoingMessage): Promise<void> {
    const { body, headers, key } = message;
    await this.pool.query({
      name: this.#name("dead"),
      text: `WITH gone AS (DELETE FROM ${this.#s} WHERE id = $1 AND receipt = $2 RETURNING 1)
             INSERT INTO ${this.#s} (queue, body, headers, key) SELECT $3, $4, $5, $6 FROM gone`,
      values: [held.id, held.receipt, deadQueue, Buffer.from(body), headers ? JSON.stringify(headers) : null, key ?? null],
    });
  }

  /** Rows ready now (waiting to be claimed). */
  async countReady(queue: string): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${this.#s} WHERE queue = $1 AND done_at IS NULL AND visible_at <= now()`,
      [queue],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * The queues with at least one row not done (waiting, claimed or delayed) that start with
   * `prefix`: a skip scan of the messages_in_order index, one seek per distinct queue (DISTINCT
   * would read every row). It walks every queue and filters the prefix after: a prefix range would
   * depend on the database's collation.
   */
  async queueNames(prefix: string): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `WITH RECURSIVE q(name) AS (
         SELECT MIN(queue) FROM ${this.#s} WHERE done_at IS NULL
         UNION ALL
         SELECT (SELECT MIN(queue) FROM ${this.#s} WHERE done_at IS NULL AND queue > q.name) FROM q WHERE q.name IS NOT NULL
       )
       SELECT name FROM q WHERE name IS NOT NULL AND left(name, length($1)) = $1`,
      [prefix],
    );
    return rows.map((row) => row.name);
  }

  /** Up to `limit` rows of the queue in id order, ready or not, left untouched. */
  async browse(queue: string, limit: number): Promise<ClaimedRow[]> {
    const { rows } = await this.pool.query<StoredRow>(
      `SELECT id, body, headers, key, attempt FROM ${this.#s} WHERE queue = $1 AND done_at IS NULL ORDER BY id LIMIT $2`,
      [queue, limit],
    );
    return rows.map(decodeRow);
  }

  /** Deletes rows acked more than `retentionMs` ago. */
  async purgeDone(retentionMs: number): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.#s} WHERE done_at < now() - $1 * interval '1 millisecond'`, [retentionMs]);
  }
}

function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Rows written by other clients may carry odd headers; a delivery must still come out (the
 * handler's decoder judges the payload), so values that are not strings are passed as JSON text.
 */
function decodeRow(row: StoredRow): ClaimedRow {
  const headers: Headers = {};
  if (row.headers !== null && typeof row.headers === "object" && !Array.isArray(row.headers)) {
    for (const [name, value] of Object.entries(row.headers)) headers[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return { id: row.id, body: row.body, headers, key: row.key ?? undefined, attempt: row.attempt };
}
