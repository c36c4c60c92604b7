import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";

// Every open() is a new connection to the same file, as separate workers would be.
const dir = mkdtempSync(join(tmpdir(), "wqueue-sqlite-conformance-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

brokerConformanceSuite({
  name: "sqlite",
  open: () => new SqliteBroker(`sqlite://${join(dir, "queue.db")}`),
  skip: {
    "broker-restart":
      "SQLite is embedded: there is no server to restart; " +
      "recovery after a process is killed is covered by test/brokers/sqlite.test.ts",
  },
});
