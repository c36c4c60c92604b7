import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers.js";
import { runCli, tempDir } from "../cli/run-cli.js";
import { startObservedWorker, stopObservedWorkers } from "./observed-worker.js";

afterEach(stopObservedWorkers);

const metric = (text: string, name: string, labels: string) =>
  Number(new RegExp(`^${name}\\{${labels}[^}]*\\} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);

describe("worker --http", () => {
  it("serves /metrics whose counters match what was pushed, /healthz and /readyz", async () => {
    const { cli, broker, base } = await startObservedWorker(tempDir());
    const good = Array.from({ length: 20 }, (_, i) => JSON.stringify({ id: i })).join("\n");
    expect((await runCli(["push", "orders", "--broker", broker], { input: `${good}\n{"fail":true}\n` })).code).toBe(0);
    expect((await runCli(["push", "orders", "not json", "--raw", "--broker", broker])).code).toBe(0);
    expect((await runCli(["push", "audit", "--raw", "--broker", broker], { input: "a\nb\nc\n" })).code).toBe(0);

    let text = "";
    await waitFor(
      () => `the counters to settle; last scrape:\n${text.split("\n").filter((l) => l.startsWith("wqueue_messages")).join("\n")}`,
      async () => {
        text = await (await fetch(`${base}/metrics`)).text();
        return metric(text, "wqueue_messages_dead_lettered_total", 'queue="orders"') === 2 && metric(text, "wqueue_messages_succeeded_total", 'queue="audit"') === 3;
      },
      10_000,
    );
    // 20 good + 1 failing twice (2 deliveries) + 1 undecodable = 23 deliveries on orders.
    expect(metric(text, "wqueue_messages_received_total", 'queue="orders"')).toBe(23);
    expect(metric(text, "wqueue_messages_succeeded_total", 'queue="orders"')).toBe(20);
    expect(metric(text, "wqueue_messages_failed_total", 'queue="orders"')).toBe(3);
    expect(metric(text, "wqueue_messages_retried_total", 'queue="orders"')).toBe(1);
    expect(metric(text, "wqueue_messages_in_flight", 'queue="orders"')).toBe(0);
    expect(metric(text, "wqueue_queue_backlog", 'queue="orders"')).toBe(0);
    expect(metric(text, "wqueue_handler_duration_seconds_count", 'queue="orders"')).toBe(23);
    expect(text).toMatch(/^wqueue_process_resident_memory_bytes \d+/m);

    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, problems: [] });

    const stats = await runCli(["stats", base.replace("http://", ""), "--once"]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/^orders\s+-\s+23\s+20\s+3\s+1\s+2\s+0\s+0/m);
    expect(stats.stdout).toContain("TypeError: order rejected");

    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("requires the bearer token for /metrics and the API, not for health checks", async () => {
    const { cli, base } = await startObservedWorker(tempDir(), ["--http-token", "s3cret"]);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect((await fetch(`${base}/api/stats`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await fetch(`${base}/api/stats`, { headers: { authorization: "Bearer s3cret" } })).status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const replay = { method: "POST", headers: { "x-wqueue-request": "1" } };
    expect((await fetch(`${base}/api/dead-letters/replay?queue=orders`, replay)).status).toBe(401);
    expect((await fetch(`${base}/api/queues/pause?queue=orders`, replay)).status).toBe(401);
    expect((await fetch(`${base}/api/dead-letters/one/delete?queue=orders&id=1`, replay)).status).toBe(401);
    const stats = await runCli(["stats", base, "--once"]);
    expect(stats.code).not.toBe(0);
    expect(stats.stderr).toMatch(/needs a token/);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });
});
