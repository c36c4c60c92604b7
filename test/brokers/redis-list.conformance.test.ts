import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { REDIS_URL, requireRedis } from "./redis-server.js";

requireRedis();
const url = `${REDIS_URL}?mode=list`;

// mode=list is at-most-once (features.delivery): the cases where a message comes back skip themselves.
brokerConformanceSuite({
  name: "redis list",
  open: () => openRedisBroker(url),
  child: { arg: () => url },
  skip: {
    "broker-restart":
      "restarting the shared Redis would disturb the other test files running in parallel; the reconnect loop is the one of " +
      "src/brokers/redis/blocking-reader.ts, which redis-reliable and redis-stream conformance restart on a private server",
  },
});
