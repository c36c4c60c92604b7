import { afterAll, beforeAll } from "vitest";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-private-server.js";

// A redis-server of this file's own (append-only, fsync always), so broker-restart can SIGKILL and
// restart it without disturbing the shared Redis other test files use.
let redis: PrivateRedis | undefined;
beforeAll(async () => {
  redis = await startPrivateRedis({ persistent: true });
});
afterAll(() => redis?.stop());

brokerConformanceSuite({
  name: "redis reliable",
  open: () => openRedisBroker(`${(redis as PrivateRedis).url}?mode=reliable`),
  restartBroker: () => (redis as PrivateRedis).restart(),
});
