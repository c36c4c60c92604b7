import { join } from "node:path";
import { ROOT, runScript, tail } from "./run-script.js";

export const KAFKA_URL = "kafka://127.0.0.1:9092";

const KAFKA_DIR = process.env.KAFKA_DIR ?? join(ROOT, ".kafka");
/** A first run downloads about 45 MB of jars from Maven Central before the broker starts. */
const TIMEOUT_MS = 300_000;

/**
 * Makes sure the test Kafka answers on 127.0.0.1:9092: scripts/kafka.sh reuses a running one, or
 * fetches Apache Kafka's jars with mvn (once) and starts a single-node KRaft broker that outlives
 * the test run. Fails with the script's output, the broker log's tail and how to start it by hand
 * (tests never skip silently).
 */
export async function ensureKafka(): Promise<void> {
  const { code, output } = await runScript("kafka.sh", [], {}, TIMEOUT_MS);
  if (code === 0) return;
  const log = tail(join(KAFKA_DIR, "kafka.log"));
  throw new Error(
    [
      `Kafka does not answer on 127.0.0.1:9092 and scripts/kafka.sh could not start it (${code}).`,
      output,
      log && `--- tail of ${join(KAFKA_DIR, "kafka.log")} ---\n${log}`,
      "Start it by hand with: bash scripts/kafka.sh   (needs Java 17+ and mvn; stop it with: bash scripts/kafka.sh stop)",
    ]
      .filter(Boolean)
      .join("\n"),
  );
}
