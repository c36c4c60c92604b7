import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll } from "vitest";
import { waitFor } from "../helpers.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = path.join(ROOT, "bin/wqueue.js");
/** The built package, as an app outside this checkout would import it. */
export const WQUEUE_IMPORT = pathToFileURL(path.join(ROOT, "dist/index.js")).href;

/**
 * Made by tempDir() for the test file being run, removed after its tests: vitest evaluates this
 * module again for every test file, so this hook joins each importing file's own suite.
 */
const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "wqueue-cli-"));
  made.push(dir);
  return dir;
}

/** Writes an app module into `dir`; `body` is code that uses `WQueue` and `app`. */
export function writeApp(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `import { WQueue, RetryLater, DeadLetterNow } from ${JSON.stringify(WQUEUE_IMPORT)};\n${body}\n`);
  return file;
}

export interface RunningCli {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  waitForLine(what: string, match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

/** Starts `wqueue ARGS` as a child process and collects its output line by line. */
export function startCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, WQUEUE_LOG_FORMAT: "json", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const collect = (into: string[]) => {
    let rest = "";
    return (chunk: Buffer) => {
      const text = rest + chunk.toString();
      const lines = text.split("\n");
      rest = lines.pop() ?? "";
      into.push(...lines);
    };
  };
  child.stdout?.on("data", collect(stdout));
  child.stderr?.on("data", collect(stderr));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    stdout,
    stderr,
    exited,
    async waitForLine(what, match, timeoutMs = 30_000) {
      await waitFor(() => `${what} (stdout: ${stdout.slice(-5).join(" | ")}; stderr: ${stderr.slice(-5).join(" | ")})`, () =>
        [...stdout, ...stderr].some(match),
        timeoutMs,
      );
      return [...stdout, ...stderr].find(match) as string;
    },
  };
}

/** Runs `wqueue ARGS` to completion. */
export async function runCli(args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string } = {}) {
  const cli = startCli(args, options);
  cli.child.stdin?.end(options.input ?? "");
  const code = await cli.exited;
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: cli.stdout.join("\n"), stderr: cli.stderr.join("\n") };
}
