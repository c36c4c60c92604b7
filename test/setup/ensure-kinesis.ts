import { join } from "node:path";
import { ROOT, runScript, tail } from "./run-script.js";

export const KINESIS_PORT = 4568;
/** The adapter's URL of the test server: a local endpoint, dummy credentials are implied. */
export const KINESIS_URL = `kinesis://127.0.0.1:${KINESIS_PORT}`;

export const KINESIS_DIR = process.env.KINESIS_DIR ?? join(ROOT, ".kinesis");
/** kinesis-local is a devDependency: nothing to download, it answers within a few seconds. */
const TIMEOUT_MS = 90_000;

/**
 * Makes sure a Kinesis server answers on 127.0.0.1:`port` (4568 unless a test asks for a private
 * one): scripts/kinesis.sh reuses a running one, or starts node_modules/kinesis-local in the
 * background, outliving the test run. `persist`: a server started here keeps its streams in
 * .kinesis/data-<port> across a restart (for private servers; the shared one is in memory).
 * Fails with the script's output, the server log's tail and how to start it by hand (tests never
 * skip silently).
 */
export async function ensureKinesis(port = KINESIS_PORT, options: { persist?: boolean } = {}): Promise<void> {
  const { code, output } = await run([], port, options.persist === true);
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
  const { code, output } = await run(["stop"], port, false);
  if (code !== 0) throw new Error(`scripts/kinesis.sh stop failed (${code}): ${output}`);
}

function run(args: string[], port: number, persist: boolean): ReturnType<typeof runScript> {
  return runScript("kinesis.sh", args, { KINESIS_PORT: String(port), KINESIS_PERSIST: persist ? "1" : "0" }, TIMEOUT_MS);
}
