import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";

// Every open() is a new connection to the same file, as separate workers would be; the kill cases'
// child process opens the same file. A 5 s visibility brings a killed consumer's message back soon.
const dir = mkdtempSync(join(tmpdir(), "wqueue-sqlite-conformance-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const url = `sqlite://${join(dir, "queue.db")}?visibility=5000`;

brokerConformanceSuite({
  name: "sqlite",
  open: () => new SqliteBroker(url),
  child: { arg: () => url },
  skip: {
    "broker-restart":
      "SQLite is embedded: there is no server to restart; what outlives a process is checked by killed-consumer-returns and durable-delay",
  },
});
