import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const KINESIS_PORT = 4568;
/** The adapter's URL of the test server: a local endpoint, dummy credentials are implied. */
export const KINESIS_URL = `kinesis://127.0.0.1:${KINESIS_PORT}`;

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCRIPT = join(root, "scripts", "kinesis.sh");
export const KINESIS_DIR = process.env.KINESIS_DIR ?? join(root, ".kinesis");
/** kinesis-local is a devDependency: nothing to download, it answers within a few seconds. */
const TIMEOUT_MS = 90_000;

function tail(path: string, lines = 30): string {
  if (!existsSync(path)) return "";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Makes sure a Kinesis server answers on 127.0.0.1:`port` (4568 unless a test asks for a private
 * one): scripts/kinesis.sh reuses a running one, or starts node_modules/kinesis-local in the
 * background, outliving the test run. `persist`: a server started here keeps its streams in
 * .kinesis/data-<port> across a restart (for private servers; the shared one is in memory).
 * Fails with the script's output, the server log's tail and how to start it by hand (tests never
 * skip silently).
 */
export async function ensureKinesis(port = KINESIS_PORT, options: { persist?: boolean } = {}): Promise<void> {
  const { code, output } = await runScript([], port, options.persist === true);
  if (code === 0) return;
  const logPath = join(KINESIS_DIR, `kinesis-${port}.log`);
  const log = tail(logPath);
  const env = `${port === KINESIS_PORT ? "" : `KINESIS_PORT=${port} `}${options.persist ? "KINESIS_PERSIST=1 " : ""}`;
  throw new Error(
    [
      `No Kinesis server answers on 127.0.0.1:${port} and scripts/kinesis.sh could not start one (${code}).`,
      output,
      log && `--- tail of ${logPath} ---\n${log}`,
      `Start it by hand with: ${env}bash scripts/kinesis.sh   (needs npm ci for kinesis-local; stop it with: ${env}bash scripts/kinesis.sh stop)`,
    ]
      .filter(Boolean)
      .join("\n"),
  );
}

/** Stops the kinesis-local that scripts/kinesis.sh started on `port` (for private test servers). */
export async function stopKinesis(port: number): Promise<void> {
  const { code, output } = await runScript(["stop"], port, false);
  if (code !== 0) throw new Error(`scripts/kinesis.sh stop failed (${code}): ${output}`);
}

async function runScript(args: string[], port: number, persist: boolean): Promise<{ code: number | string; output: string }> {
  const output: string[] = [];
  const code = await new Promise<number | string>((resolve) => {
    const child = spawn("bash", [SCRIPT, ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, KINESIS_PORT: String(port), KINESIS_PERSIST: persist ? "1" : "0" },
    });
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      resolve(`timed out after ${TIMEOUT_MS / 1000} s`);
    }, TIMEOUT_MS);
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
