import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const KAFKA_URL = "kafka://127.0.0.1:9092";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCRIPT = join(root, "scripts", "kafka.sh");
const KAFKA_DIR = process.env.KAFKA_DIR ?? join(root, ".kafka");
/** A first run downloads about 45 MB of jars from Maven Central before the broker starts. */
const TIMEOUT_MS = 300_000;

function tail(path: string, lines = 30): string {
  if (!existsSync(path)) return "";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Makes sure the test Kafka answers on 127.0.0.1:9092: scripts/kafka.sh reuses a running one, or
 * fetches Apache Kafka's jars with mvn (once) and starts a single-node KRaft broker that outlives
 * the test run. Fails with the script's output, the broker log's tail and how to start it by hand
 * (tests never skip silently).
 */
export async function ensureKafka(): Promise<void> {
  const output: string[] = [];
  const code = await new Promise<number | string>((resolve) => {
    const child = spawn("bash", [SCRIPT], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
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
  if (code === 0) return;
  const log = tail(join(KAFKA_DIR, "kafka.log"));
  throw new Error(
    [
      `Kafka does not answer on 127.0.0.1:9092 and scripts/kafka.sh could not start it (${code}).`,
      output.join("").trim(),
      log && `--- tail of ${join(KAFKA_DIR, "kafka.log")} ---\n${log}`,
      "Start it by hand with: bash scripts/kafka.sh   (needs Java 17+ and mvn; stop it with: bash scripts/kafka.sh stop)",
    ]
      .filter(Boolean)
      .join("\n"),
  );
}
