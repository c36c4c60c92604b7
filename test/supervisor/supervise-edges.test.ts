import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { superviseProcesses } from "../../src/supervisor/supervise.js";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { memoryLogger, waitFor } from "../helpers.js";

/**
 * The supervisor (`wqueue worker --processes N`) at its edges: a child deaf to SIGTERM, a child
 * that crashes at every start, and a supervisor killed outright (SIGKILL) with children running.
 * test/runners/supervise.test.ts covers the ordinary paths.
 */
const pids: number[] = [];
const clis: RunningCli[] = [];
afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const cli of clis.splice(0)) cli.child.kill("SIGKILL");
});

/** A stand-in for the CLI: logs "start INDEX PID" and "term INDEX N" to LOG; MODE "deaf" ignores SIGTERM, "crash" exits 1 at once. */
function fakeWorker(dir: string, mode: "deaf" | "crash"): { bin: string; log: string } {
  const log = path.join(dir, "log.txt");
  const bin = path.join(dir, "fake-worker.mjs");
  writeFileSync(
    bin,
    `import { appendFileSync } from "node:fs";
const index = process.env.WQUEUE_CHILD_INDEX;
const say = (line) => appendFileSync(${JSON.stringify(log)}, line + "\\n");
say("start " + index + " " + process.pid);
if (${JSON.stringify(mode)} === "crash") process.exit(1);
let signals = 0;
process.on("SIGTERM", () => say("term " + index + " " + ++signals));
setInterval(() => {}, 1000);
`,
  );
  return { bin, log };
}

const logLines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("supervisor edges", () => {
  it("a third stop signal SIGKILLs a child that ignores the first two; the exit code says the stop was forced", async () => {
    const dir = tempDir();
    const { bin, log } = fakeWorker(dir, "deaf");
    const { logger, lines } = memoryLogger();
    const exit = superviseProcesses({ processes: 1, argv: [], logger, bin, handleSignals: true });
    await waitFor("the child", () => logLines(log).some((line) => line.startsWith("start 0 ")));
    pids.push(Number(logLines(log)[0]?.split(" ")[2]));
    for (const n of [1, 2]) {
      process.emit("SIGTERM", "SIGTERM");
      await waitFor(`SIGTERM ${n} to reach the child`, () => logLines(log).includes(`term 0 ${n}`));
    }
    process.emit("SIGTERM", "SIGTERM");
    expect(await exit).toBe(130);
    expect(lines.find((line) => String(line.msg).startsWith("supervisor: child 0 exited"))).toMatchObject({ signal: "SIGKILL" });
    expect(alive(pids[0] as number)).toBe(false);
  });

  it("a child that crashes at every start is restarted with a back-off that doubles up to its cap (from the logged delays)", async () => {
    const dir = tempDir();
    const { bin, log } = fakeWorker(dir, "crash");
    const { logger, lines } = memoryLogger();
    const stop = new AbortController();
    const exit = superviseProcesses({
      processes: 1,
      argv: [],
      logger,
      bin,
      backoff: { initialMs: 10, maxMs: 80 },
      signal: stop.signal,
      handleSignals: false,
    });
    const delays = () => lines.filter((line) => line.restartInMs !== undefined).map((line) => line.restartInMs);
    await waitFor(() => `seven restarts (delays so far: ${delays().join(", ")})`, () => delays().length >= 7, 60_000);
    stop.abort();
    await exit;
    expect(delays().slice(0, 7)).toEqual([10, 20, 40, 80, 80, 80, 80]);
    // Every restart is a new process for the same slot.
    expect(new Set(logLines(log).filter((line) => line.startsWith("start 0 "))).size).toBeGreaterThanOrEqual(7);
  });
});

describe("children of a supervisor that was SIGKILLed", () => {
  /**
   * The real CLI: `wqueue worker --processes 2` on SQLite. A child's app waits at load until GATE exists,
   * so the supervisor can be killed while its children are still loading (the IPC channel closes
   * before they listen for it) or once they run.
   */
  async function killSupervisor(when: "loading" | "running") {
    const dir = tempDir();
    const gate = path.join(dir, "gate");
    if (when === "running") writeFileSync(gate, "");
    const app = writeApp(
      dir,
      "app.mts",
      `import { existsSync } from "node:fs";
// The supervisor loads the app too (to check it): only its children wait.
if (process.env.WQUEUE_CHILD_INDEX !== undefined) {
  while (!existsSync(${JSON.stringify(gate)})) await new Promise((resolve) => setTimeout(resolve, 20));
}
export const app = new WQueue();
app.listenEvents("orders", async () => {});`,
    );
    const cli = startCli(["worker", "-a", app, "--broker", `sqlite://${dir}/q.db`, "--processes", "2"]);
    clis.push(cli);
    const childPids = () =>
      [...cli.stdout, ...cli.stderr].flatMap((line) => {
        const match = /child \d started \(pid (\d+)\)/.exec(line);
        return match ? [Number(match[1])] : [];
      });
    await waitFor(() => `two children started (said: ${[...cli.stdout, ...cli.stderr].slice(-5).join(" | ")})`, () => childPids().length === 2, 30_000);
    const children = childPids();
    pids.push(...children);
    if (when === "running") {
      await waitFor("both children ready", () => [...cli.stdout, ...cli.stderr].filter((line) => /"child":\d.*ready/.test(line)).length >= 2, 60_000);
    }
    cli.child.kill("SIGKILL");
    // Not cli.exited: that waits for stdout to close, which the children share.
    await waitFor("the supervisor to die", () => cli.child.signalCode === "SIGKILL");
    if (when === "loading") writeFileSync(gate, "");
    await waitFor(
      () => `the children (${children.join(", ")}) to exit on their own; still alive: ${children.filter(alive).join(", ")}`,
      () => !children.some(alive),
      60_000,
    );
  }

  it("running children drain and exit", () => killSupervisor("running"), 120_000);
  it("children still loading their app exit once loaded, instead of running on unsupervised", () => killSupervisor("loading"), 120_000);
});
