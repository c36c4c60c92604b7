import { createRequire } from "node:module";
import { ConfigError } from "../../errors.js";

/**
 * One synchronous SQLite connection, on whichever driver this Node runs safely:
 * - Node 24 and later: the built-in `node:sqlite`. better-sqlite3 12 (the last line that supports
 *   Node 20) wraps its statements in Node's raw ObjectWrap, whose destructor aborts the whole
 *   process on Node 24.19+ when a garbage-collected statement is finalised outside a JS context
 *   ("Assertion failed: (env) != nullptr" in RemoveEnvironmentCleanupHook): a worker would die at
 *   a random moment after a broker closed. Its fix (13.x) needs Node 22.
 * - Node 20 and 22: better-sqlite3, which has no such abort there, and `node:sqlite` is missing
 *   (20) or experimental (22).
 * `WQUEUE_SQLITE_DRIVER=better-sqlite3|node:sqlite` overrides the choice (tests, or a user who
 * must keep one driver).
 *
 * Both drivers take named parameters as `@name` bound from an object's `name` key, and ignore keys
 * a statement does not use. A BLOB comes back as a Buffer from both.
 */
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Record<string, unknown>[];
}

export interface SqliteDatabase {
  /** `node:sqlite` or `better-sqlite3`. */
  readonly driver: SqliteDriverName;
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  /**
   * Runs `work` in `BEGIN IMMEDIATE ... COMMIT` (the write lock taken up front, so the busy timeout
   * applies), rolled back if it throws. Inside another transaction it just runs `work`.
   */
  immediate<T>(work: () => T): T;
  close(): void;
}

export type SqliteDriverName = "node:sqlite" | "better-sqlite3";

export interface OpenSqliteOptions {
  readOnly?: boolean;
  /** How long a statement waits for another connection's lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

const require = createRequire(import.meta.url);

/** The driver this process uses (see the module comment). */
export function sqliteDriver(env: NodeJS.ProcessEnv = process.env): SqliteDriverName {
  const chosen = env.WQUEUE_SQLITE_DRIVER;
  if (chosen === "node:sqlite" || chosen === "better-sqlite3") return chosen;
  if (chosen) throw new ConfigError(`WQUEUE_SQLITE_DRIVER must be "node:sqlite" or "better-sqlite3", got "${chosen}"`);
  return Number(process.versions.node.split(".")[0]) >= 24 ? "node:sqlite" : "better-sqlite3";
}

export function openSqliteDatabase(path: string, options: OpenSqliteOptions = {}): SqliteDatabase {
  const driver = sqliteDriver();
  return driver === "node:sqlite" ? openBuiltin(path, options) : openBetterSqlite3(path, options);
}

// ---- node:sqlite ---------------------------------------------------------------------------

/** The part of `node:sqlite` used here (@types/node 20 does not describe the module). */
interface BuiltinStatement {
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Record<string, unknown>[];
  setAllowUnknownNamedParameters(enabled: boolean): void;
}
interface BuiltinDatabase {
  prepare(sql: string): BuiltinStatement;
  exec(sql: string): void;
  close(): void;
  readonly isOpen: boolean;
  readonly isTransaction: boolean;
}
type BuiltinModule = {
  DatabaseSync: new (path: string, options: { readOnly?: boolean; timeout?: number }) => BuiltinDatabase;
};

function openBuiltin(path: string, options: OpenSqliteOptions): SqliteDatabase {
  let builtin: BuiltinModule;
  try {
    builtin = require("node:sqlite") as BuiltinModule;
  } catch (error) {
    throw new Error(`node:sqlite is not available on Node ${process.version} (it needs Node 22.13 or later)`, { cause: error });
  }
  const { DatabaseSync } = builtin;
  const db = new DatabaseSync(path, { readOnly: options.readOnly ?? false, timeout: options.busyTimeoutMs ?? 5000 });
  return {
    driver: "node:sqlite",
    prepare(sql) {
      const statement = db.prepare(sql);
      statement.setAllowUnknownNamedParameters(true);
      return {
        run: (...params) => ({ changes: Number(statement.run(...params).changes) }),
        get: (...params) => blobsAsBuffers(statement.get(...params)),
        all: (...params) => statement.all(...params).map((row) => blobsAsBuffers(row) as Record<string, unknown>),
      };
    },
    exec: (sql) => db.exec(sql),
    immediate<T>(work: () => T): T {
      if (db.isTransaction) return work();
      db.exec("BEGIN IMMEDIATE");
      try {
        const result = work();
        db.exec("COMMIT");
        return result;
      } catch (error) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw error;
      }
    },
    close() {
      if (db.isOpen) db.close();
    },
  };
}

/** `node:sqlite` returns a BLOB as a plain Uint8Array; callers get a Buffer view of it (no copy). */
function blobsAsBuffers(row: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (row === undefined) return undefined;
  for (const [column, value] of Object.entries(row)) {
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
      row[column] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return row;
}

// ---- better-sqlite3 ------------------------------------------------------------------------

type BetterSqlite3 = typeof import("better-sqlite3");

function openBetterSqlite3(path: string, options: OpenSqliteOptions): SqliteDatabase {
  const Database = require("better-sqlite3") as BetterSqlite3;
  const db = new Database(path, { readonly: options.readOnly ?? false, timeout: options.busyTimeoutMs ?? 5000 });
  const inTransaction = db.transaction((work: () => unknown) => work());
  return {
    driver: "better-sqlite3",
    // Its statements already have this shape: handed out as they are, no wrapper on the hot path.
    prepare: (sql) => db.prepare(sql) as unknown as SqliteStatement,
    exec: (sql) => void db.exec(sql),
    immediate: <T>(work: () => T): T => inTransaction.immediate(work) as T,
    close() {
      if (db.open) db.close();
    },
  };
}
