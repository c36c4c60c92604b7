import { afterAll, beforeAll } from "vitest";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-private-server.js";

// A redis-server of this file's own (append-only, fsync always), so broker-restart can SIGKILL and
// restart it without disturbing the shared Redis other test files use. ?claimIdle=5000: another consumer claims a dead consumer's entries once idle 5 s.
let redis: PrivateRedis | undefined;
beforeAll(async () => {
  redis = await startPrivateRedis({ persistent: true });
});
afterAll(() => redis?.stop());
const url = () => `${(redis as PrivateRedis).url}?mode=stream&claimIdle=5000`;

brokerConformanceSuite({
  name: "redis stream",
  open: () => openRedisBroker(url()),
  child: { arg: url },
  restartBroker: () => (redis as PrivateRedis).restart(),
});
