import { afterAll, beforeAll } from "vitest";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { type PrivateRedisCluster, startPrivateRedisCluster } from "./redis-private-cluster.js";

/**
 * The shared conformance suite on a cluster of the calling file's own (3 masters, 3 replicas on
 * loopback) of `server`'s build, in each of the three Redis modes. Not run: broker-restart (a
 * Cluster is not one server to restart; redis-cluster.test.ts kills a master instead and shows the failover).
 */
export function clusterConformance(server: "redis" | "valkey"): void {
  let cluster: PrivateRedisCluster | undefined;
  beforeAll(async () => {
    cluster = await startPrivateRedisCluster({ server });
  }, 90_000);
  afterAll(() => cluster?.stop());
  const url = (params: string) => () => `${(cluster as PrivateRedisCluster).seeds}?cluster=true&${params}`;
  const restart = "a Redis Cluster is six servers; redis-cluster.test.ts kills a master mid-stream instead";

  for (const [mode, params] of [
    ["reliable", "heartbeatTtl=3000"],
    ["stream", "mode=stream&claimIdle=5000"],
    ["list", "mode=list"],
  ] as const) {
    brokerConformanceSuite({
      name: `${server} cluster ${mode}`,
      open: () => openRedisBroker(url(params)()),
      child: { arg: url(params) },
      skip: { "broker-restart": restart },
    });
  }
}
