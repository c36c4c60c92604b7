import { Kafka, type LogEntry, logLevel, type RetryOptions } from "kafkajs";
import type { KafkaUrl } from "./kafka-url.js";

/** Where the adapter reports connection trouble and kafkajs's own warnings. */
export type KafkaEventLog = (level: "debug" | "info" | "warn" | "error", message: string) => void;

/** How long connect() waits for the first broker before BrokerUnreachableError. */
export const CONNECT_TIMEOUT_MS = 3000;

const levels: Record<number, "debug" | "info" | "warn" | "error"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/**
 * The kafkajs client every producer, admin and group member of one broker is made from. Its
 * retries (about 30 s of capped backoff) carry publishes and commits over a broker restart;
 * connect() probes through a client of its own with `retry: { retries: 0 }`. kafkajs logs go to
 * `log` at WARN and above, never to the console.
 */
export function createKafkaClient(config: KafkaUrl, log: KafkaEventLog, retry?: RetryOptions): Kafka {
  return new Kafka({
    clientId: `wqueue-${config.group}`,
    brokers: config.brokers,
    connectionTimeout: CONNECT_TIMEOUT_MS,
    requestTimeout: 30_000,
    retry: retry ?? { initialRetryTime: 200, maxRetryTime: 5000, retries: 8 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ namespace, level, log: entry }: LogEntry) => {
        const detail = typeof entry.error === "string" ? `: ${entry.error}` : "";
        log(levels[level] ?? "debug", `kafka ${config.shown} (${namespace}): ${entry.message}${detail}`);
      },
  });
}

/** One line for an error from kafkajs, its cause included (kafkajs nests the useful part). */
export function describeKafkaError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  while (current instanceof Error && parts.length < 4) {
    if (!parts.includes(current.message)) parts.push(current.message);
    current = (current as { cause?: unknown }).cause;
  }
  return parts.length > 0 ? parts.join(": ") : String(error);
}
