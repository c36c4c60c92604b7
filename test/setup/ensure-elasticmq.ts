import { join } from "node:path";
import { ROOT, runScript, tail } from "./run-script.js";

export const ELASTICMQ_PORT = 9324;
/** The adapter's URL of the test server: a local endpoint, dummy credentials are implied. */
export const SQS_URL = `sqs://127.0.0.1:${ELASTICMQ_PORT}?region=us-east-1`;

const ELASTICMQ_DIR = process.env.ELASTICMQ_DIR ?? join(ROOT, ".elasticmq");
/** A first run downloads about 40 jars (~35 MB) from Maven Central before the server starts. */
const TIMEOUT_MS = 300_000;

/**
 * Makes sure an SQS server answers on 127.0.0.1:`port` (9324 unless a test asks for a private one):
 * scripts/elasticmq.sh reuses a running one, or fetches ElasticMQ's jars with mvn (once) and starts
 * it in the background, outliving the test run. Fails with the script's output, the server log's
 * tail and how to start it by hand (tests never skip silently).
 */
export async function ensureElasticmq(port = ELASTICMQ_PORT): Promise<void> {
  const { code, output } = await run([], port);
  if (code === 0) return;
  const logPath = join(ELASTICMQ_DIR, `elasticmq-${port}.log`);
  const log = tail(logPath);
  const env = port === ELASTICMQ_PORT ? "" : `ELASTICMQ_PORT=${port} `;
  throw new Error(
    [
      `No SQS server answers on 127.0.0.1:${port} and scripts/elasticmq.sh could not start one (${code}).`,
      output,
      log && `--- tail of ${logPath} ---\n${log}`,
      `Start it by hand with: ${env}bash scripts/elasticmq.sh   (needs Java and mvn; stop it with: ${env}bash scripts/elasticmq.sh stop)`,
    ]
      .filter(Boolean)
      .join("\n"),
  );
}

/** Stops the ElasticMQ that scripts/elasticmq.sh started on `port` (for private test servers). */
export async function stopElasticmq(port: number): Promise<void> {
  const { code, output } = await run(["stop"], port);
  if (code !== 0) throw new Error(`scripts/elasticmq.sh stop failed (${code}): ${output}`);
}

function run(args: string[], port: number): ReturnType<typeof runScript> {
  return runScript("elasticmq.sh", args, { ELASTICMQ_PORT: String(port) }, TIMEOUT_MS);
}
