import { describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import { checkQueuePattern, filterQueues, isQueuePattern, literalPrefixOf, matchesQueuePattern, redisGlobOf, regExpOf } from "../../src/brokers/queue-pattern.js";

/** The one pattern syntax (src/brokers/queue-pattern.ts) and what each broker is given of it. */
describe("queue patterns", () => {
  it("tells patterns from queue names", () => {
    expect(isQueuePattern("tenant.*")).toBe(true);
    expect(isQueuePattern("tenant.>")).toBe(true);
    expect(isQueuePattern("tenant-*")).toBe(true); // a pattern, refused by checkQueuePattern
    expect(isQueuePattern("tenant.acme")).toBe(false);
    expect(isQueuePattern("orders")).toBe(false);
  });

  it("* matches exactly one non-empty segment", () => {
    expect(matchesQueuePattern("tenant.*", "tenant.acme")).toBe(true);
    expect(matchesQueuePattern("tenant.*", "tenant.acme.eu")).toBe(false);
    expect(matchesQueuePattern("tenant.*", "tenant")).toBe(false);
    expect(matchesQueuePattern("tenant.*", "tenant.")).toBe(false);
    expect(matchesQueuePattern("tenant.*", "tenants.acme")).toBe(false);
    expect(matchesQueuePattern("*.orders", "acme.orders")).toBe(true);
    expect(matchesQueuePattern("*.orders", "acme.invoices")).toBe(false);
    expect(matchesQueuePattern("a.*.c", "a.b.c")).toBe(true);
    expect(matchesQueuePattern("a.*.c", "a.b.x.c")).toBe(false);
  });

  it("> as the last segment matches one or more segments", () => {
    expect(matchesQueuePattern("tenant.>", "tenant.acme")).toBe(true);
    expect(matchesQueuePattern("tenant.>", "tenant.acme.eu")).toBe(true);
    expect(matchesQueuePattern("tenant.>", "tenant")).toBe(false);
    expect(matchesQueuePattern("tenant.>", "tenant.acme..eu")).toBe(false);
    expect(matchesQueuePattern(">", "anything.at.all")).toBe(true);
  });

  it("never matches a dead-letter queue", () => {
    expect(matchesQueuePattern("tenant.>", "tenant.acme.dead")).toBe(false);
    expect(matchesQueuePattern("*.*", "tenant.dead")).toBe(false);
    expect(matchesQueuePattern("tenant.>", "tenant.deadbeef")).toBe(true);
    expect(matchesQueuePattern("tenant.*", "tenant.*")).toBe(false); // a pattern is no queue
  });

  it("refuses wildcards mixed into a segment, > before the end, and empty segments", () => {
    expect(() => checkQueuePattern("tenant-*")).toThrow(/"tenant-\*" mixes a wildcard/);
    expect(() => checkQueuePattern("tenant.>.eu")).toThrow(/must be the last segment/);
    expect(() => checkQueuePattern("tenant..*")).toThrow(/empty segment/);
    expect(() => checkQueuePattern("tenant.*")).not.toThrow();
    expect(() => checkQueuePattern("*.orders.>")).not.toThrow();
  });

  it("gives Redis a glob that finds every match, with glob characters of names escaped", () => {
    expect(redisGlobOf("tenant.*")).toBe("tenant.*");
    expect(redisGlobOf("a[1]?.>")).toBe("a\\[1\\]\\?.*");
    expect(redisGlobOf("tenant.*", ":wqueue:delayed")).toBe("tenant.*:wqueue:delayed");
  });

  it("gives Kafka a RegExp equal to the matcher", () => {
    const names = ["tenant.acme", "tenant.acme.eu", "tenant", "tenantXacme", "tenant.a+b", "x.tenant.acme"];
    for (const pattern of ["tenant.*", "tenant.>", "*.acme", "tenant.a+b"]) {
      if (!isQueuePattern(pattern)) continue;
      for (const name of names) expect(regExpOf(pattern).test(name), `${pattern} ~ ${name}`).toBe(matchesQueuePattern(pattern, name));
    }
    expect(regExpOf("tenant.*").test("tenantXacme")).toBe(false); // the dot is literal
  });

  it("gives SQL the literal prefix before the first wildcard", () => {
    expect(literalPrefixOf("tenant.*")).toBe("tenant.");
    expect(literalPrefixOf("a.b.>")).toBe("a.b.");
    expect(literalPrefixOf("*.orders")).toBe("");
  });

  it("is checked where the app takes queue names: listenEvents refuses a bad pattern and a misplaced discoverMs, publish any pattern", async () => {
    const app = new WQueue({ broker: "memory://queue-pattern-unit" });
    expect(() => app.listenEvents("tenant-*", () => {})).toThrow(/mixes a wildcard/);
    expect(() => app.listenEvents("tenant.acme", () => {}, { discoverMs: 1000 })).toThrow(/discoverMs applies to a queue pattern/);
    expect(() => app.listenEvents("tenant.*", () => {}, { discoverMs: 0 })).toThrow(/discoverMs must be a whole number/);
    expect(app.listenEvents("tenant.*", () => {}, { discoverMs: 1000 })).toBeTypeOf("function");
    await expect(app.publish("tenant.*", { n: 1 })).rejects.toThrow(/is a queue pattern/);
    await app.close();
  });

  it("filters, sorts and deduplicates listed names", () => {
    expect(filterQueues("tenant.*", ["tenant.b", "tenant.a", "tenant.b", "tenant.a.dead", "other.a", "tenant.a:wqueue:x.y"])).toEqual([
      "tenant.a",
      "tenant.b",
    ]);
  });
});
