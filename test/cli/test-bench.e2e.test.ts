import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ROOT } from "./run-cli.js";

const run = promisify(execFile);
const COUNT = 30;
const env = { ...process.env, BENCH_COUNT: String(COUNT), WQUEUE_BROKER_URL: undefined };

describe("npm start (test_bench/run.ts)", () => {
  it("shows producing and consuming progress as plain lines when stdout is not a terminal", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "test_bench/run.ts"], { cwd: ROOT, env });
    const lines = stdout.split("\n");
    expect(lines).toContain(`producing: ${COUNT}/${COUNT} messages (100%)`);
    const consumed = lines.flatMap((line) => /^consuming: (\d+)\/30 messages/.exec(line)?.[1] ?? []).map(Number);
    expect(consumed.length).toBeGreaterThanOrEqual(10); // one line per tenth
    expect(consumed).toEqual([...consumed].sort((a, b) => a - b));
    expect(consumed.at(-1)).toBe(COUNT);
    // Consuming progress comes after the worker's ready line and before the summary.
    const ready = lines.findIndex((line) => line.startsWith("worker ready:"));
    const firstConsuming = lines.findIndex((line) => line.startsWith("consuming:"));
    const summary = lines.findIndex((line) => line.startsWith(`test bench: ${COUNT} messages`));
    expect(ready).toBeGreaterThan(-1);
    expect(firstConsuming).toBeGreaterThan(ready);
    expect(summary).toBeGreaterThan(firstConsuming);
    expect(stdout).not.toContain("\u001b["); // no terminal control characters in a log
  }, 60_000);

  it("shows a bar for consuming in a terminal", async () => {
    // script(1) gives the bench a pseudo-terminal as stdout.
    const command = `${JSON.stringify(process.execPath)} --import tsx test_bench/run.ts`;
    const { stdout } = await run("script", ["-qec", command, "/dev/null"], { cwd: ROOT, env });
    expect(stdout).toMatch(new RegExp(`consuming \\[[^\\]]+\\] ${COUNT}/${COUNT} messages`));
    expect(stdout).toMatch(new RegExp(`producing \\[[^\\]]+\\] ${COUNT}/${COUNT} messages`));
    expect(stdout).not.toMatch(/^consuming: /m);
  }, 60_000);
});
