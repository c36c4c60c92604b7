import { afterAll, beforeAll } from "vitest";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-private-server.js";

// A redis-server of this file's own (append-only, fsync always), so broker-restart can SIGKILL and
// restart it without disturbing the shared Redis other test files use. ?heartbeatTtl=3000: the reaper hands a dead consumer's messages back 3 s after its last heartbeat.
let redis: PrivateRedis | undefined;
beforeAll(async () => {
  redis = await startPrivateRedis({ persistent: true });
});
afterAll(() => redis?.stop());
const url = () => `${(redis as PrivateRedis).url}?mode=reliable&heartbeatTtl=3000`;

brokerConformanceSuite({
  name: "redis reliable",
  open: () => openRedisBroker(url()),
  child: { arg: url },
  restartBroker: () => (redis as PrivateRedis).restart(),
});
