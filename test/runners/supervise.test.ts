/**
 * superviseProcesses with a stand-in for the CLI (a small script that behaves like a worker), so
 * restart, back-off and exit codes are checked without brokers. The real CLI under the supervisor
 * is in runner-suite.test.ts ("processes").
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { childArgv, childIndex, childLogger } from "../../src/supervisor/child.js";
import { superviseProcesses } from "../../src/supervisor/supervise.js";
import { tempDir } from "../cli/run-cli.js";
import { memoryLogger, waitFor } from "../helpers.js";

const pids: number[] = [];
afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

/**
 * A fake worker: logs "start INDEX PID ARGS" to LOG; MODE "crash-once" makes child 0 exit 1 the
 * first time, "config-error" exits 2 at once, "stubborn" ignores the first SIGTERM and exits 130
 * on the second; otherwise SIGTERM exits 0.
 */
function fakeWorker(dir: string, mode: string): { bin: string; log: string } {
  const log = path.join(dir, "log.txt");
  const bin = path.join(dir, "fake-worker.mjs");
  writeFileSync(
    bin,
    `import { appendFileSync, existsSync, writeFileSync } from "node:fs";
const index = process.env.WQUEUE_CHILD_INDEX;
const say = (line) => appendFileSync(${JSON.stringify(log)}, line + "\\n");
say("start " + index + " " + process.pid + " " + process.argv.slice(2).join(" "));
const mode = ${JSON.stringify(mode)};
if (mode === "config-error") process.exit(2);
const marker = ${JSON.stringify(path.join(dir, "crashed"))};
if (mode === "crash-once" && index === "0" && !existsSync(marker)) { writeFileSync(marker, ""); process.exit(1); }
let signals = 0;
process.on("SIGTERM", () => {
  signals += 1;
  say("term " + index + " " + signals);
  if (mode === "stubborn" && signals === 1) return;
  process.exit(signals > 1 ? 130 : 0);
});
setInterval(() => {}, 1000);
`,
  );
  return { bin, log };
}

const logLines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
const starts = (file: string) => logLines(file).filter((line) => line.startsWith("start "));

function supervise(bin: string, stop: AbortController, processes = 2) {
  const { logger, lines } = memoryLogger();
  const exit = superviseProcesses({
    processes,
    argv: ["worker", "-a", "app.ts"],
    logger,
    bin,
    backoff: { initialMs: 50, maxMs: 200 },
    signal: stop.signal,
    handleSignals: false,
  });
  return { exit, lines };
}

describe("superviseProcesses", () => {
  it("starts N children with their index and the worker args, and exits 0 once they stop after SIGTERM", async () => {
    const dir = tempDir();
    const { bin, log } = fakeWorker(dir, "normal");
    const stop = new AbortController();
    const { exit } = supervise(bin, stop, 3);
    await waitFor("three children", () => starts(log).length === 3);
    for (const line of starts(log)) pids.push(Number(line.split(" ")[2]));
    expect(starts(log).map((line) => line.split(" ")[1]).sort()).toEqual(["0", "1", "2"]);
    expect(starts(log)[0]).toMatch(/ worker -a app\.ts$/);
    stop.abort();
    expect(await exit).toBe(0);
    expect(logLines(log).filter((line) => line.startsWith("term ")).sort()).toEqual(["term 0 1", "term 1 1", "term 2 1"]);
  });

  it("restarts a crashed child with the same index, after a back-off", async () => {
    const dir = tempDir();
    const { bin, log } = fakeWorker(dir, "crash-once");
    const stop = new AbortController();
    const { exit, lines } = supervise(bin, stop);
    await waitFor("child 0 started again", () => starts(log).filter((line) => line.startsWith("start 0 ")).length === 2);
    for (const line of starts(log)) pids.push(Number(line.split(" ")[2]));
    const restart = lines.find((line) => String(line.msg).includes("restarting in"));
    expect(restart).toMatchObject({ child: 0, code: 1, restartInMs: 50 });
    stop.abort();
    expect(await exit).toBe(0);
  });

  it("stops everything and exits 2 when a child fails at start-up with a user error", async () => {
    const dir = tempDir();
    const { bin, log } = fakeWorker(dir, "config-error");
    const { exit, lines } = supervise(bin, new AbortController());
    expect(await exit).toBe(2);
    expect(starts(log).length).toBeLessThanOrEqual(2);
    expect(lines.some((line) => String(line.msg).includes("failed at start-up"))).toBe(true);
  });

  it("a second stop signal is forwarded again (the worker forces its stop); the exit code says so", async () => {
    const dir = tempDir();
    const { bin, log } = fakeWorker(dir, "stubborn");
    const logger = memoryLogger().logger;
    const listeners = process.listenerCount("SIGTERM");
    const exit = superviseProcesses({ processes: 1, argv: [], logger, bin, handleSignals: true });
    await waitFor("the child", () => starts(log).length === 1);
    pids.push(Number(starts(log)[0]?.split(" ")[2]));
    process.emit("SIGTERM", "SIGTERM");
    await waitFor("the first SIGTERM to reach the child", () => logLines(log).includes("term 0 1"));
    process.emit("SIGTERM", "SIGTERM");
    expect(await exit).toBe(130);
    expect(process.listenerCount("SIGTERM")).toBe(listeners);
  });
});

describe("child helpers", () => {
  it("childIndex reads WQUEUE_CHILD_INDEX", () => {
    expect(childIndex({ WQUEUE_CHILD_INDEX: "3" })).toBe(3);
    expect(childIndex({})).toBeUndefined();
    expect(childIndex({ WQUEUE_CHILD_INDEX: "x" })).toBeUndefined();
  });

  it("childLogger adds `child` to every line of a child's logger", () => {
    const { logger, lines } = memoryLogger();
    childLogger(logger, { WQUEUE_CHILD_INDEX: "1" }).info("hello");
    childLogger(logger, {}).info("plain");
    expect(lines[0]).toMatchObject({ child: 1, msg: "hello" });
    expect(lines[1]).not.toHaveProperty("child");
  });

  it("childArgv drops --processes and its value", () => {
    expect(childArgv(["worker", "-a", "app.ts", "--processes", "2", "--threads", "4"])).toEqual(["worker", "-a", "app.ts", "--threads", "4"]);
    expect(childArgv(["worker", "--processes=3", "-a", "app.ts"])).toEqual(["worker", "-a", "app.ts"]);
  });
});
