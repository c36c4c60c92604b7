import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import type { Broker } from "../../src/brokers/contract.js";
import { openKinesisBroker } from "../../src/brokers/kinesis/open-kinesis-broker.js";
import { brokerConformanceSuite, skipAllBut } from "../../src/testing/conformance.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { dropKinesisApp, requireKinesis } from "./kinesis-server.js";

// Every case runs against the real kinesis-local on 127.0.0.1:4568, with leases and checkpoints in
// the real Redis under an app of this file's own; each open() is a new SDK client, as separate
// workers would be. The streams the suite names are deleted when the file ends, with the app's keys.
const server = requireKinesis({ prefix: "kinesis-conformance" });
const app = `conformance-${randomUUID().slice(0, 8)}`;

/** Notes every stream the broker touches, so afterAll deletes it. */
function tracked(broker: Broker): Broker {
  return new Proxy(broker, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== "publish" && property !== "consumer") return typeof value === "function" ? value.bind(target) : value;
      return (queue: string, ...rest: unknown[]) => {
        server.track(queue);
        return (value as (...args: unknown[]) => unknown).call(target, queue, ...rest);
      };
    },
  });
}

afterAll(() => dropKinesisApp(app));

// One shard per stream (the default), so the order case checks the one order Kinesis keeps. A
// 3 s lease: a killed consumer's shard (and its unchecked records) is taken over 3 s after it died.
const inRedis = () => server.url(`?app=${app}&checkpoints=${REDIS_URL}&lease=3000&poll=50`);

brokerConformanceSuite({
  name: "kinesis (kinesis-local, checkpoints in Redis)",
  open: () => tracked(openKinesisBroker(inRedis())),
  child: { arg: inRedis },
  skip: {
    "broker-restart": "restarting the shared kinesis-local would empty it under the other test files: run below on a private one",
  },
});

// The same suite with leases and checkpoints in an SQLite file (the embedded case: one machine).
const sqliteDir = mkdtempSync(join(tmpdir(), "wqueue-kinesis-"));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

const inSqlite = () => server.url(`?app=${app}&checkpoints=sqlite://${sqliteDir}/leases.db&lease=3000&poll=50`);

brokerConformanceSuite({
  name: "kinesis (kinesis-local, checkpoints in SQLite)",
  open: () => tracked(openKinesisBroker(inSqlite())),
  child: { arg: inSqlite },
  skip: {
    "broker-restart": "run below on a private kinesis-local, with checkpoints in Redis",
  },
});

// A private kinesis-local that keeps its streams on disk, stopped and started by the case (the full
// check: what was queued and what was in flight at the restart come back; restart() makes sure the
// server saved every write acknowledged before it, see savedAfter in kinesis-server.ts).
const restartable = requireKinesis({ prefix: "kinesis-restart", private: true, persist: true });
const elsewhere = "run above on the shared kinesis-local; this private one is for the restart case only";

brokerConformanceSuite({
  name: "kinesis broker-restart (a private kinesis-local, stopped and started)",
  open: () => openKinesisBroker(restartable.url(`?app=${app}&checkpoints=${REDIS_URL}&lease=3000&poll=50`)),
  restartBroker: () => restartable.restart(),
  skip: skipAllBut(["broker-restart"], elsewhere),
});
