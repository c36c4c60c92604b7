import { Kafka, type LogEntry, logLevel } from "kafkajs";
import { silenceKafkajsNegativeTimeouts } from "./kafkajs-warnings.js";
import type { KafkaUrl } from "./kafka-url.js";

/** Where the adapter reports connection trouble and kafkajs's own warnings. */
export type KafkaEventLog = (level: "debug" | "info" | "warn" | "error", message: string) => void;

/** How long connect() waits for the first broker before BrokerUnreachableError. */
export const CONNECT_TIMEOUT_MS = 3000;
/**
 * How long connect()'s probe waits for the first answer: a server that accepts the connection but
 * does not speak Kafka (Redis, say) never answers, and the usual 30 s would leave it silent.
 */
export const PROBE_REQUEST_TIMEOUT_MS = 3000;

const levels: Record<number, "debug" | "info" | "warn" | "error"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/**
 * The kafkajs client every producer, admin and group member of one broker is made from. Its
 * retries (about 30 s of capped backoff) carry publishes and commits over a broker restart;
 * connect() probes through a client of its own (`probe`: no retries, a short request timeout). kafkajs logs go to
 * `log` at WARN and above, never to the console.
 */
export function createKafkaClient(config: KafkaUrl, log: KafkaEventLog, probe = false): Kafka {
  silenceKafkajsNegativeTimeouts();
  return new Kafka({
    clientId: `wqueue-${config.group}`,
    brokers: config.brokers,
    connectionTimeout: CONNECT_TIMEOUT_MS,
    requestTimeout: probe ? PROBE_REQUEST_TIMEOUT_MS : 30_000,
    retry: probe ? { retries: 0 } : { initialRetryTime: 200, maxRetryTime: 5000, retries: 8 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ namespace, level, log: entry }: LogEntry) => {
        const detail = typeof entry.error === "string" ? `: ${entry.error}` : "";
        const text = `${entry.message}${detail}`;
        // A rebalance is routine (a member joined or left): kafkajs reports it as an error response,
        // and again for each heartbeat while a member holds its rejoin (rejoin-gate.ts): those at debug.
        const shown = isRebalance(text) ? (text.includes("Response Heartbeat") ? "debug" : "info") : (levels[level] ?? "debug");
        log(shown, `kafka ${config.shown} (${namespace}): ${text}`);
      },
  });
}

/** A group rebalance in progress (REBALANCE_IN_PROGRESS, kafkajs's "re-joining"): routine, not a failure. */
export function isRebalance(text: string): boolean {
  return /rebalanc/i.test(text);
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
