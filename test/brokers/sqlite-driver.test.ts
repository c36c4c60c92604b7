import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteDatabase, sqliteDriver } from "../../src/brokers/shared/sqlite-database.js";

/**
 * The SQLite driver under the default broker and the Kinesis lease store. CI runs this file on
 * Node 20 (better-sqlite3) and Node 24 (node:sqlite), so each driver meets the same checks.
 */
const dir = mkdtempSync(join(tmpdir(), "wqueue-sqlite-driver-"));
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const major = Number(process.versions.node.split(".")[0]);

describe(`the SQLite driver on Node ${process.version} (${sqliteDriver()})`, () => {
  it("binds @names from an object, ignoring keys a statement does not use, and returns BLOBs as Buffers", () => {
    const db = openSqliteDatabase(join(dir, "binding.db"));
    try {
      db.exec("CREATE TABLE t (name TEXT, body BLOB)");
      db.prepare("INSERT INTO t VALUES (@name, @body)").run({ name: "a", body: Buffer.from("hi"), unused: 1 });
      const row = db.prepare("SELECT name, body FROM t WHERE name = ?").get("a");
      expect(row?.name).toBe("a");
      expect(Buffer.isBuffer(row?.body)).toBe(true);
      expect(String(row?.body)).toBe("hi");
      expect(db.prepare("DELETE FROM t WHERE name = @name").run({ name: "a", other: "x" }).changes).toBe(1);
    } finally {
      db.close();
    }
  });

  it("rolls an immediate transaction back when its work throws, and runs a nested one inside the outer", () => {
    const db = openSqliteDatabase(join(dir, "transactions.db"));
    try {
      db.exec("CREATE TABLE t (n INTEGER)");
      const insert = db.prepare("INSERT INTO t VALUES (?)");
      const count = () => db.prepare("SELECT COUNT(*) AS n FROM t").get()?.n;
      expect(() =>
        db.immediate(() => {
          insert.run(1);
          throw new Error("handler failed");
        }),
      ).toThrow("handler failed");
      expect(count()).toBe(0);
      db.immediate(() => {
        insert.run(1);
        db.immediate(() => insert.run(2));
      });
      expect(count()).toBe(2);
    } finally {
      db.close();
    }
  });

  it("waits for another process's write lock instead of failing at once", async () => {
    const path = join(dir, "locks.db");
    const setup = openSqliteDatabase(path);
    setup.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER)");
    setup.close();
    // The other process takes the write lock, says so, and holds it for 500 ms.
    const holder = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `const { openSqliteDatabase } = await import(${JSON.stringify(join(repoRoot, "src/brokers/shared/sqlite-database.ts"))});
         const db = openSqliteDatabase(${JSON.stringify(path)});
         db.exec("BEGIN IMMEDIATE");
         console.log("locked");
         setTimeout(() => { db.exec("COMMIT"); db.close(); }, 500);`,
      ],
      { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on("data", (chunk: Buffer) => String(chunk).includes("locked") && resolve());
      holder.once("exit", (code) => reject(new Error(`the lock holder exited with ${code} before locking`)));
    });
    const db = openSqliteDatabase(path, { busyTimeoutMs: 5000 });
    try {
      // Synchronous: without the busy timeout this throws SQLITE_BUSY at once.
      expect(db.immediate(() => db.prepare("INSERT INTO t VALUES (1)").run().changes)).toBe(1);
    } finally {
      db.close();
      holder.kill();
    }
  });

  it(`a worker process on the default broker ${major >= 24 ? "never loads" : "loads"} better-sqlite3 on this Node`, () => {
    // On Node 24.19+ better-sqlite3 12 aborts the process when a statement is garbage-collected
    // outside a JS context; the guard is that it is never loaded there.
    const script = `
      import { createRequire } from "node:module";
      const { SqliteBroker } = await import(${JSON.stringify(join(repoRoot, "src/brokers/sqlite/SqliteBroker.ts"))});
      const broker = new SqliteBroker(${JSON.stringify(`sqlite://${join(dir, "worker.db")}`)});
      await broker.publish("q", [{ body: new TextEncoder().encode("x") }]);
      await broker.close();
      const loaded = Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes("better_sqlite3") || file.includes("better-sqlite3"));
      console.log(JSON.stringify({ loaded }));`;
    const result = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: repoRoot,
      encoding: "utf8",
      env: { ...process.env, WQUEUE_SQLITE_DRIVER: "" },
    });
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout.trim())).toEqual({ loaded: major < 24 });
  });

  it("refuses an unknown WQUEUE_SQLITE_DRIVER with the two names it takes", () => {
    expect(() => sqliteDriver({ WQUEUE_SQLITE_DRIVER: "sqlite3" })).toThrow(/"node:sqlite" or "better-sqlite3"/);
  });
});
