import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { REDIS_URL, requireRedis } from "./redis-server.js";

requireRedis();

brokerConformanceSuite({
  name: "redis list",
  open: () => openRedisBroker(REDIS_URL),
  skip: {
    "unsettled-return-on-close":
      "mode=list is at-most-once: a popped message is gone from Redis, so an unsettled one cannot come back",
    "broker-restart":
      "restarting the shared Redis would disturb the other test files running in parallel; reconnecting is covered by the reliable-delivery work",
  },
});
