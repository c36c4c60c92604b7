import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { KINESIS_URL } from "../setup/ensure-kinesis.js";
import { runCli, tempDir, writeApp } from "./run-cli.js";

/**
 * Configuration that can never work is refused before `ready`, with one line and exit 2, instead
 * of a receive failing again every few seconds after the worker said it was ready (issue 12, 14).
 */
const isReady = (line: string) => line.includes('"msg":"ready:');

function expectRefused(result: { code: number | null; stdout: string; stderr: string }, pattern: RegExp) {
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr.trim().split("\n")).toHaveLength(1);
  expect(result.stdout.split("\n").some(isReady)).toBe(false);
}

describe("wqueue worker refuses broker configuration that cannot work, before ready", () => {
  // `orders.*` and `orders.>` are queue patterns now (listenEvents watches for matching streams).
  it("nats: a queue name that is no valid subject (spaces, empty tokens)", async () => {
    for (const queue of ["orders created", "orders..created"]) {
      const file = writeApp(tempDir(), "app.ts", `export const app = new WQueue(); app.listenEvents(${JSON.stringify(queue)}, () => {});`);
      const result = await runCli(["worker", "-a", file, "--broker", "nats://127.0.0.1:4222"]);
      expectRefused(result, /^wqueue: queue ".+" gives the NATS subject ".+", which is not a valid literal subject/);
    }
  }, 60_000);

  it("kinesis: a checkpoint store that does not answer", async () => {
    const queue = `cli-kinesis-${randomUUID().slice(0, 8)}`;
    const file = writeApp(tempDir(), "app.ts", `export const app = new WQueue(); app.listenEvents(${JSON.stringify(queue)}, () => {});`);
    const broker = `${KINESIS_URL}?checkpoints=redis://:hunter2@127.0.0.1:1`;
    // The AWS SDK warns on Node 20 that its 2027 releases need Node 22 (README).
    const result = await runCli(["worker", "-a", file, "--broker", broker], { env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" } });
    expectRefused(result, /^wqueue: kinesis .*checkpoint store: cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
    expect(result.stderr).not.toContain("hunter2");
  }, 30_000);
});
