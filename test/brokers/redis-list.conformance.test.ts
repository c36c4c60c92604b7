import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { REDIS_URL, requireRedis } from "./redis-server.js";

requireRedis();

brokerConformanceSuite({
  name: "redis list",
  open: () => openRedisBroker(`${REDIS_URL}?mode=list`),
  skip: {
    "unsettled-return-on-close":
      "mode=list is at-most-once: a popped message is gone from Redis, so an unsettled one cannot come back",
    "broker-restart":
      "restarting the shared Redis would disturb the other test files running in parallel; the reconnect loop is the one of " +
      "src/brokers/redis/blocking-reader.ts, which redis-reliable and redis-stream conformance restart on a private server",
  },
});
