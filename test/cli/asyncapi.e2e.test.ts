import { readFileSync } from "node:fs";
import path from "node:path";
import { Parser } from "@asyncapi/parser";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { runCli, tempDir, writeApp } from "./run-cli.js";


/** Parses with the official AsyncAPI parser; fails on any error-level diagnostic. */
async function parseAsyncApi(text: string) {
  const { document, diagnostics } = await new Parser().parse(text);
  const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join(".")}: ${d.message}`);
  expect(errors).toEqual([]);
  expect(document).toBeDefined();
  return document as NonNullable<typeof document>;
}

describe("wqueue asyncapi", () => {
  it("writes a valid AsyncAPI 3.0 document: queues as channels on their brokers, zod bodies as JSON Schema, dead-letter channels", async () => {
    const dir = tempDir();
    const zod = JSON.stringify(path.resolve("node_modules/zod/index.js"));
    const app = writeApp(
      dir,
      "app.ts",
      `import { z } from ${zod};
export const app = new WQueue({ name: "shop", broker: "redis://:hunter2@127.0.0.1:6379/2", brokers: { audit: "amqp://guest:guest@127.0.0.1:5672" } });
app.listenEvents("orders", () => {}, { schema: z.object({ id: z.string(), amount: z.number().min(0) }) });
app.listenEvents("notes", () => {}, { decode: "text", broker: "audit", deadLetterBroker: "default" });
app.listenEvents("raw.events", () => {});
app.listenEvents("tenant.*.orders", () => {});`,
    );
    const out = path.join(dir, "asyncapi.yaml");
    const result = await runCli(["asyncapi", "-a", app, "-o", out]);
    expect(result.stderr).toContain("wrote");
    expect(result.code).toBe(0);
    const text = readFileSync(out, "utf8");
    expect(text).not.toContain("hunter2");

    const document = await parseAsyncApi(text);
    expect(document.version()).toBe("3.0.0");
    expect(document.info().title()).toBe("shop");
    const channels = Object.fromEntries(document.channels().all().map((c) => [c.id(), c]));
    expect(Object.keys(channels).sort()).toEqual([
      "audit-notes",
      "audit-notes_dead",
      "orders",
      "orders_dead",
      "raw_events",
      "raw_events_dead",
      "tenant___orders",
      "tenant___orders_dead",
    ]);
    // A queue pattern: an address with a parameter per wildcard, its dead letters likewise.
    expect(channels.tenant___orders?.address()).toBe("tenant.{segment1}.orders");
    expect(channels.tenant___orders?.parameters().all().map((p) => p.id())).toEqual(["segment1"]);
    expect(channels.tenant___orders_dead?.address()).toBe("tenant.{segment1}.orders.dead");
    expect(channels.orders?.address()).toBe("orders");
    expect(channels.orders_dead?.address()).toBe("orders.dead");
    expect(channels.orders?.servers().all().map((s) => `${s.protocol()}://${s.host()}${s.pathname() ?? ""}`)).toEqual(["redis://127.0.0.1:6379/2"]);
    expect(channels["audit-notes"]?.servers().all().map((s) => s.protocol())).toEqual(["amqp"]);
    // deadLetterBroker: the dead letters of "notes" are on the default broker.
    expect(channels["audit-notes_dead"]?.servers().all().map((s) => s.protocol())).toEqual(["redis"]);

    const order = channels.orders?.messages().all()[0];
    expect(order?.contentType()).toBe("application/json");
    const payload = order?.payload()?.json();
    expect(payload).toMatchObject({ type: "object", required: ["id", "amount"], properties: { amount: { type: "number", minimum: 0 } } });
    expect(channels["audit-notes"]?.messages().all()[0]?.contentType()).toBe("text/plain");
    const deadHeaders = channels.orders_dead?.messages().all()[0]?.headers()?.json() as { properties?: object } | undefined;
    expect(Object.keys(deadHeaders?.properties ?? {})).toContain("x-wqueue-dead-reason");

    const operations = document.operations().all();
    expect(operations.filter((o) => o.action() === "receive").map((o) => o.channels().all()[0]?.address()).sort()).toEqual(["notes", "orders", "raw.events", "tenant.{segment1}.orders"]);
    expect(operations.filter((o) => o.action() === "send")).toHaveLength(4);
  }, 60_000);

  it("prints YAML on stdout, JSON with -o x.json, and a missing app is one line, exit 2", async () => {
    const dir = tempDir();
    const app = writeApp(dir, "app.ts", `export const app = new WQueue();\napp.listenEvents("jobs", () => {});`);
    const printed = await runCli(["asyncapi", "-a", app, "--broker", "sqlite:///var/lib/q.db"]);
    expect(printed.code).toBe(0);
    const fromYaml = parseYaml(printed.stdout) as { servers: { default: unknown } };
    expect(fromYaml.servers.default).toMatchObject({ protocol: "sqlite", host: "localhost", pathname: "/var/lib/q.db" });
    await parseAsyncApi(printed.stdout);

    const json = path.join(dir, "doc.json");
    expect((await runCli(["asyncapi", "-a", app, "-o", json])).code).toBe(0);
    await parseAsyncApi(readFileSync(json, "utf8"));
    expect(JSON.parse(readFileSync(json, "utf8")).channels.jobs.address).toBe("jobs");

    const missing = await runCli(["asyncapi", "-a", path.join(dir, "nope.ts")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
  }, 60_000);
});
