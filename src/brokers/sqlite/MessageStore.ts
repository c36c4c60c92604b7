import type { Headers, OutgoingMessage } from "../contract.js";
import { openSqliteDatabase, type SqliteDatabase, type SqliteStatement } from "../shared/sqlite-database.js";

/**
 * The SQLite file behind a SqliteBroker: one `messages` table shared by every queue and by every
 * process that opens the file. A row is visible when `visible_at <= now`; receiving pushes
 * `visible_at` forward by the visibility timeout and stamps a fresh `receipt`, so a consumer that
 * dies leaves nothing behind but rows that become visible again. Every change matches
 * (id, receipt), so a holder whose visibility expired cannot settle someone else's delivery.
 *
 * Every write runs in an IMMEDIATE transaction: it takes the write lock up front, so the busy
 * timeout applies instead of a read snapshot failing to upgrade (SQLITE_BUSY_SNAPSHOT).
 *
 * Two indexes: (queue, visible_at) answers "anything visible?" and "when is the next one due?" in
 * one seek; (queue, priority DESC, id, visible_at) lets a receive walk the queue in delivery order
 * (highest priority first, FIFO within one), skipping the few hidden rows at its head, instead of
 * sorting the whole visible backlog on every receive (3x faster on a 100k backlog). A queue whose
 * rows all have priority 0 walks it exactly as it walked (queue, id, visible_at) before priorities
 * existed. The take names it with INDEXED BY: the planner would pick the first.
 */
const NOW_MS = "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))";
// The defaults let any SQLite client produce: INSERT INTO messages (queue, body) VALUES ('q', 'hi').
// julianday rather than unixepoch, which SQLite clients older than 3.38 lack.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  body BLOB NOT NULL,
  headers TEXT,                        -- JSON object of strings, NULL when empty
  key TEXT,
  attempt INTEGER NOT NULL DEFAULT 0,  -- deliveries so far
  priority INTEGER NOT NULL DEFAULT 0, -- higher first (publish({ priority }), 0-9)
  visible_at INTEGER NOT NULL DEFAULT ${NOW_MS},
  receipt TEXT,                        -- token of the latest delivery
  created_at INTEGER NOT NULL DEFAULT ${NOW_MS}
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at, id);
`;
// Files written before priorities existed get the column (rows default to 0) and the
// priority-ordered index; checked inside one IMMEDIATE transaction, so two processes opening an
// old file at once migrate it once. Their old FIFO index (queue, id, visible_at) stays: an older
// wqueue still reading the file during a rolling upgrade takes with INDEXED BY it.
const ORDER_INDEX = "CREATE INDEX IF NOT EXISTS messages_by_priority ON messages (queue, priority DESC, id, visible_at)";

/** A row as stored; `body` is text when an outside client inserted a string. */
interface StoredRow {
  id: number;
  body: Buffer | string;
  headers: string | null;
  key: string | null;
  attempt: number;
  priority: number;
}

/** Highest priority first, FIFO (id order) within a priority: the order the take walks its index. */
function inDeliveryOrder(a: StoredRow, b: StoredRow): number {
  return b.priority - a.priority || a.id - b.id;
}

export interface TakenMessage {
  id: number;
  body: Uint8Array;
  headers: Headers;
  key: string | undefined;
  /** Deliveries so far, this one included. */
  attempt: number;
  priority: number;
}

/** Identifies one delivery of one row. */
export interface Held {
  id: number;
  receipt: string;
}

export class MessageStore {
  readonly #db: SqliteDatabase;
  readonly #insert: SqliteStatement;
  readonly #peek: SqliteStatement;
  readonly #take: SqliteStatement;
  readonly #nextVisible: SqliteStatement;
  readonly #nextVisibleOf: SqliteStatement;
  readonly #dataVersion: SqliteStatement;
  readonly #delete: SqliteStatement;
  readonly #setVisible: SqliteStatement;
  readonly #extend: SqliteStatement;
  readonly #browse: SqliteStatement;
  readonly #removeWaiting: SqliteStatement;
  readonly #count: SqliteStatement;
  readonly #queueNames: SqliteStatement;

  constructor(path: string) {
    this.#db = openSqliteDatabase(path, { busyTimeoutMs: 5000 });
    this.#db.exec("PRAGMA journal_mode = WAL");
    // NORMAL in WAL mode: a killed process loses nothing; only a power cut or OS crash can drop
    // the last commits. FULL would fsync every commit, at several times the cost.
    this.#db.exec("PRAGMA synchronous = NORMAL");
    this.#db.exec(SCHEMA);
    this.#migrate();
    this.#insert = this.#db.prepare(
      `INSERT INTO messages (queue, body, headers, key, attempt, priority, visible_at, created_at)
       VALUES (@queue, @body, @headers, @key, @attempt, @priority, @visibleAt, @now)`,
    );
    this.#peek = this.#db.prepare("SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1");
    this.#take = this.#db.prepare(
      `UPDATE messages SET visible_at = @until, attempt = attempt + 1, receipt = @receipt
       WHERE id IN (SELECT id FROM messages INDEXED BY messages_by_priority
                    WHERE queue = @queue AND visible_at <= @now ORDER BY priority DESC, id LIMIT @max)
       RETURNING id, body, headers, key, attempt, priority`,
    );
    this.#nextVisible = this.#db.prepare("SELECT MIN(visible_at) AS next FROM messages WHERE queue = ?");
    // One statement for many queues (the queue names as a JSON array): an index seek per queue.
    this.#nextVisibleOf = this.#db.prepare(
      "SELECT j.value AS queue, (SELECT MIN(visible_at) FROM messages WHERE queue = j.value) AS next FROM json_each(?) AS j",
    );
    this.#dataVersion = this.#db.prepare("PRAGMA data_version");
    this.#delete = this.#db.prepare("DELETE FROM messages WHERE id = @id AND receipt = @receipt");
    this.#setVisible = this.#db.prepare(
      "UPDATE messages SET visible_at = @visibleAt, attempt = attempt - @uncount WHERE id = @id AND receipt = @receipt",
    );
    // One statement for the whole batch: the ids and receipts travel as a JSON array of pairs.
    this.#extend = this.#db.prepare(
      `UPDATE messages SET visible_at = @until
       WHERE (id, receipt) IN (SELECT value ->> 0, value ->> 1 FROM json_each(@held))`,
    );
    this.#count = this.#db.prepare("SELECT COUNT(*) AS n FROM messages WHERE queue = ? AND visible_at <= ?");
    this.#removeWaiting = this.#db.prepare("DELETE FROM messages WHERE queue = ? AND id = ? AND visible_at <= ?");
    this.#browse = this.#db.prepare(
      "SELECT id, body, headers, key, attempt, priority FROM messages INDEXED BY messages_by_priority WHERE queue = ? ORDER BY priority DESC, id LIMIT ?",
    );
    // A skip scan over the (queue, ...) index: one seek per distinct queue from the prefix on, not
    // a read of every row (DISTINCT would read the whole index).
    this.#queueNames = this.#db.prepare(
      `WITH RECURSIVE q(name) AS (
         SELECT MIN(queue) FROM messages WHERE queue >= @prefix
         UNION ALL
         SELECT (SELECT MIN(queue) FROM messages WHERE queue > q.name) FROM q
         WHERE q.name IS NOT NULL AND substr(q.name, 1, length(@prefix)) = @prefix
       )
       SELECT name FROM q WHERE name IS NOT NULL AND substr(name, 1, length(@prefix)) = @prefix`,
    );
  }

  /** The queues that hold at least one row (waiting, held or delayed) and start with `prefix`. */
  queueNames(prefix: string): string[] {
    return (this.#queueNames.all({ prefix }) as { name: string }[]).map((row) => row.name);
  }

  /** Rows of the queue that are visible now (waiting to be received). */
  countVisible(queue: string, now = Date.now()): number {
    return this.#count.get(queue, now)?.n as number;
  }

  /** Deletes row `id` of `queue` if it is visible (a held row is a consumer's until settled). */
  removeWaiting(queue: string, id: number, now = Date.now()): boolean {
    return this.#removeWaiting.run(queue, id, now).changes > 0;
  }

  /** Up to `limit` rows of the queue in the order they will be received (priority, then id), visible or not, without touching them. */
  browse(queue: string, limit: number): TakenMessage[] {
    return (this.#browse.all(queue, limit) as unknown as StoredRow[]).map(decodeRow);
  }

  /** One transaction for the whole batch; `attempt` is stored as deliveries so far. */
  insert(queue: string, messages: readonly OutgoingMessage[], now = Date.now()): void {
    this.#transaction(() => {
      for (const message of messages) this.#insertOne(queue, message, now);
    });
  }

  /** Cheap read (no write lock): is anything visible in this queue? */
  hasVisible(queue: string, now: number): boolean {
    return this.#peek.get(queue, now) !== undefined;
  }

  /** Takes up to `max` visible rows, highest priority first and in id order within one, hiding them until `until` under `receipt`. */
  take(queue: string, max: number, now: number, until: number, receipt: string): TakenMessage[] {
    const rows = this.#transaction(() => this.#take.all({ queue, max, now, until, receipt }) as unknown as StoredRow[]);
    // RETURNING gives no order guarantee.
    return rows.sort(inDeliveryOrder).map(decodeRow);
  }

  /**
   * take() for several queues in ONE transaction (one commit, one WAL append): the receives of
   * many queues waiting in the same turn cost one write, not one each.
   */
  takeMany(requests: readonly { queue: string; max: number; receipt: string }[], now: number, until: number): TakenMessage[][] {
    const taken = this.#transaction(() =>
      requests.map(({ queue, max, receipt }) => this.#take.all({ queue, max, now, until, receipt }) as unknown as StoredRow[]),
    );
    return taken.map((rows) => rows.sort(inDeliveryOrder).map(decodeRow));
  }

  /** Earliest `visible_at` of the queue (in flight or delayed rows included), if it has rows. */
  nextVisibleAt(queue: string): number | undefined {
    return (this.#nextVisible.get(queue)?.next as number | null) ?? undefined;
  }

  /** nextVisibleAt() of each of these queues in one statement; queues without rows are left out. */
  nextVisibleOf(queues: readonly string[]): Map<string, number> {
    const next = new Map<string, number>();
    if (queues.length === 0) return next;
    for (const row of this.#nextVisibleOf.all(JSON.stringify(queues)) as { queue: string; next: number | null }[]) {
      if (row.next !== null) next.set(row.queue, row.next);
    }
    return next;
  }

  /** Changes whenever another connection (any process) commits to the file. */
  dataVersion(): number {
    return this.#dataVersion.get()?.data_version as number;
  }

  /** Acks: deletes each row still held under its receipt; stale receipts change nothing. */
  deleteHeld(held: readonly Held[]): void {
    this.#transaction(() => {
      for (const one of held) this.#delete.run(one);
    });
  }

  /** Nack or return on close: the row becomes visible at `visibleAt` if still held. */
  makeVisible(held: readonly Held[], visibleAt: number, keepAttempt = false): void {
    const uncount = keepAttempt ? 1 : 0;
    this.#transaction(() => {
      for (const one of held) this.#setVisible.run({ ...one, visibleAt, uncount });
    });
  }

  /**
   * Extends a lease: hides each row until `until` if it is still held under its receipt. A row
   * already deleted, or re-taken by another consumer (a fresh receipt), is left untouched.
   * Returns how many rows were extended.
   */
  extendHeld(held: readonly Held[], until: number): number {
    if (held.length === 0) return 0;
    const pairs = JSON.stringify(held.map(({ id, receipt }) => [id, receipt]));
    return this.#transaction(() => this.#extend.run({ held: pairs, until }).changes);
  }

  /** Moves a held row to `deadQueue` as a new message; false (and no copy) if no longer held. */
  deadLetter(held: Held, deadQueue: string, message: OutgoingMessage, now = Date.now()): boolean {
    return this.#transaction(() => {
      if (this.#delete.run(held).changes === 0) return false;
      this.#insertOne(deadQueue, message, now);
      return true;
    });
  }

  close(): void {
    this.#db.close();
  }

  #migrate(): void {
    this.#transaction(() => {
      const columns = this.#db.prepare("SELECT name FROM pragma_table_info('messages')").all() as { name: string }[];
      if (!columns.some((column) => column.name === "priority")) {
        this.#db.exec("ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0");
      }
      this.#db.exec(ORDER_INDEX);
    });
  }

  #insertOne(queue: string, message: OutgoingMessage, now: number): void {
    const { body, headers, key, delayMs, attempt } = message;
    this.#insert.run({
      queue,
      body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      headers: headers && Object.keys(headers).length > 0 ? JSON.stringify(headers) : null,
      key: key ?? null,
      attempt: Math.max(0, (attempt ?? 1) - 1),
      priority: message.priority ?? 0,
      visibleAt: now + Math.max(0, delayMs ?? 0),
      now,
    });
  }

  #transaction<T>(work: () => T): T {
    return this.#db.immediate(work);
  }
}

/**
 * Rows written by outside clients may hold a text body or odd headers; a delivery must still come
 * out (the handler's decoder judges the payload), so headers that are not a JSON object count as none.
 */
function decodeRow(row: StoredRow): TakenMessage {
  return {
    id: row.id,
    body: typeof row.body === "string" ? Buffer.from(row.body) : row.body,
    headers: parseHeaders(row.headers),
    key: row.key ?? undefined,
    attempt: row.attempt,
    priority: row.priority,
  };
}

function parseHeaders(json: string | null): Headers {
  if (json === null) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return {};
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return {};
  const headers: Headers = {};
  for (const [name, value] of Object.entries(parsed)) {
    headers[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return headers;
}
