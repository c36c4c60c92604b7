import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";
import { ROOT, runScript, tail } from "./run-script.js";

/** A first start may copy Kafka's jars from Maven's local repository; a loaded machine starts the JVM slowly. */
const TIMEOUT_MS = 300_000;

/**
 * A single-node Kafka of the test's own, started by the project's scripts/kafka.sh on free ports
 * with its data in a temporary directory (the jars are the test Kafka's, in .kafka/), for tests
 * that stop and start their broker: never the shared one on 9092, which other test files use.
 */
export interface PrivateKafka {
  /** `kafka://127.0.0.1:<port>` */
  readonly url: string;
  /** `kafka.sh stop` (SIGTERM: a controlled shutdown), then `kafka.sh` again on the same data. */
  restart(): Promise<void>;
  /** Stops the broker and removes its directory. */
  stop(): Promise<void>;
}

export async function startPrivateKafka(): Promise<PrivateKafka> {
  const dir = mkdtempSync(join(tmpdir(), "wqueue-kafka-"));
  const port = await freePort();
  const env = {
    KAFKA_DIR: dir,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(await freePort()),
    KAFKA_JARS_DIR: process.env.KAFKA_DIR ?? join(ROOT, ".kafka"),
  };
  const script = async (args: string[]) => {
    const { code, output } = await runScript("kafka.sh", args, env, TIMEOUT_MS);
    if (code !== 0) throw new Error(`private Kafka: kafka.sh ${args.join(" ")} failed (${code}):\n${output}\n${tail(join(dir, "kafka.log")) ?? ""}`);
  };
  await script([]);
  return {
    url: `kafka://127.0.0.1:${port}`,
    restart: async () => {
      await script(["stop"]);
      await script([]);
    },
    stop: async () => {
      await script(["stop"]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
