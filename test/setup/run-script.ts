import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root, where scripts/ and the brokers' cache folders live. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Runs `bash scripts/NAME ARGS` from the repository root with extra `env`, collecting its output;
 * resolves with its exit code, or a reason (timed out, could not spawn) instead of a code.
 */
export async function runScript(
  name: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ code: number | string; output: string }> {
  const output: string[] = [];
  const code = await new Promise<number | string>((resolve) => {
    const child = spawn("bash", [join(ROOT, "scripts", name), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      resolve(`timed out after ${timeoutMs / 1000} s`);
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    child.on("error", (error) => resolve(error.message));
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve(status ?? "killed");
    });
  });
  return { code, output: output.join("").trim() };
}

/** The last `lines` lines of a log file, or "" when there is none. */
export function tail(path: string, lines = 30): string {
  if (!existsSync(path)) return "";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}
