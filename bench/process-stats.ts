import { type ChildProcess, execSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { within } from "./harness.js";

/**
 * Another process as a user runs it (the `wqueue` CLI, a BullMQ worker): started and waited for
 * until it says it is ready, its CPU time and memory read from Linux's /proc, stopped with SIGTERM.
 * The benches that measure idle cost share it (idle-memory, many-queues, models).
 */

const CLOCK_TICKS = Number(execSync("getconf CLK_TCK").toString().trim()) || 100;

/** utime + stime of these processes, in seconds (an exited one counts nothing). */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited
    }
  }
  return ticks / CLOCK_TICKS;
}

/** Resident set now and at its peak (VmRSS, VmHWM) of a live process, MiB. */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => {
    const value = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
    if (!value) throw new Error(`no ${field} for process ${pid}`);
    return Number(value) / 1024;
  };
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** Starts `node args` in `cwd` and resolves once its output matches `ready` (rejects if it exits first or takes 30 s). */
export async function startUntilReady(name: string, args: string[], cwd: string, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_NO_WARNINGS: "1" } });
  let output = "";
  const isReady = new Promise<void>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk;
      if (ready.test(output)) resolve();
    };
    child.stdout?.on("data", read);
    child.stderr?.on("data", read);
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${output}`)));
  });
  try {
    await within(isReady, 30_000, `ready line from ${name}`);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return child;
}

/** SIGTERM, then SIGKILL if it has not exited within 15 s. */
export async function stopProcess(child: ChildProcess, name: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await within(exited, 15_000, `exit of ${name}`).catch(() => child.kill("SIGKILL"));
}
