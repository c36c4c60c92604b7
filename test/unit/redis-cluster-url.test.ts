import { describe, expect, it } from "vitest";
import { hashPart, queueKeyPrefix } from "../../src/brokers/redis/cluster-keys.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { reliableKeys } from "../../src/brokers/redis/reliable-item.js";
import { createBroker } from "../../src/brokers/registry.js";
import { parseBrokerHosts, redactUrl } from "../../src/brokers/url.js";
import { ConfigError } from "../../src/errors.js";

describe("Redis Cluster URLs", () => {
  it("reads the seed list, keeps credentials and parameters, and redacts the password", () => {
    const url = "redis://user:s3cret@10.0.0.1:7001,10.0.0.2:7002,[::1]:7003/?cluster=true&password=pw2&mode=stream";
    const { url: parsed, hosts } = parseBrokerHosts(url, 6379);
    expect(hosts).toEqual([
      { host: "10.0.0.1", port: 7001 },
      { host: "10.0.0.2", port: 7002 },
      { host: "::1", port: 7003 },
    ]);
    expect([parsed.username, parsed.password, parsed.searchParams.get("mode")]).toEqual(["user", "s3cret", "stream"]);
    const shown = redactUrl(url);
    expect(shown).not.toContain("s3cret");
    expect(shown).not.toContain("pw2");
    expect(shown).toContain("10.0.0.1:7001,10.0.0.2:7002");
    expect(parseBrokerHosts("redis://h1,h2:7002", 6379).hosts).toEqual([
      { host: "h1", port: 6379 },
      { host: "h2", port: 7002 },
    ]);
  });

  it("refuses what a Cluster cannot do, naming the redacted URL", async () => {
    const refused = (url: string) => () => openRedisBroker(url);
    expect(refused("redis://:pw@h1:7001,h2:7002")).toThrow(/several hosts make a Redis Cluster URL: add \?cluster=true/);
    expect(refused("redis://:pw@h1:7001,h2:7002/2?cluster=true")).toThrow(/database 0 only/);
    expect(refused("redis://:pw@h1:7001,h2:x?cluster=true")).toThrow(ConfigError);
    expect(refused("redis://h1:7001?cluster=maybe")).toThrow(/cluster=maybe must be true or false/);
    expect(refused("redis://h1:7001?wait=-1")).toThrow(/wait=-1 must be a whole number/);
    expect(refused("redis://h1:7001?waitTimeout=0")).toThrow(/waitTimeout=0 must be at least 1/);
    try {
      openRedisBroker("redis://:pw@h1:7001,h2:7002");
    } catch (error) {
      expect((error as Error).message).not.toContain(":pw@");
    }
    // The registry takes the host list too (the adapter reads it), Kafka's seed list as well.
    const broker = await createBroker("redis://h1:7001,h2:7002?cluster=true&mode=list");
    expect(broker.kind).toBe("redis-list");
    expect((await createBroker("kafka://h1:9092,h2:9092")).kind).toBe("kafka");
  });

  it("tags a queue's keys only on a Cluster: single-node keys are as they were", () => {
    expect(reliableKeys("orders", "c1", false)).toMatchObject({ source: "orders", processing: "orders:wqueue:processing:c1", delayed: "orders:wqueue:delayed" });
    const tagged = reliableKeys("orders", "c1", true);
    expect(tagged).toMatchObject({ source: "orders", processing: "{orders}:wqueue:processing:c1", delayed: "{orders}:wqueue:delayed" });
    for (const key of Object.values(tagged)) expect(hashPart(key)).toBe("orders");
    // A queue name with its own hash tag keeps it; one whose braces would split its keys is refused.
    expect(queueKeyPrefix("{orders}.eu", true)).toBe("{orders}.eu:wqueue:");
    expect(() => queueKeyPrefix("a}b", true)).toThrow(ConfigError);
  });
});
