import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger } from "pino";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The worker's structured logger: JSON lines when stdout is not a terminal (for log shippers),
 * readable colour lines when it is. WQUEUE_LOG_FORMAT=json|pretty overrides the guess.
 */
export function createLogger(level: LogLevel = "info", stream: NodeJS.WritableStream = process.stdout): Logger {
  const format = process.env.WQUEUE_LOG_FORMAT ?? ((stream as { isTTY?: boolean }).isTTY ? "pretty" : "json");
  const options = { level, base: { pid: process.pid } };
  if (format === "pretty") {
    return pino(options, pretty({ colorize: true, sync: true, destination: stream, ignore: "pid,hostname" }));
  }
  return pino(options, stream);
}
