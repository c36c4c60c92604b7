import { createRequire } from "node:module";
import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger } from "pino";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The worker's structured logger: JSON lines when stdout is not a terminal (for log shippers),
 * readable colour lines when it is. WQUEUE_LOG_FORMAT=json|pretty overrides the guess.
 *
 * Readable lines need pino-pretty, an optional peer dependency (a development tool: production
 * logs are JSON, and it brings 17 packages). Without it the logger writes JSON and its first line
 * says how to get readable ones.
 */
export function createLogger(level: LogLevel = "info", stream: NodeJS.WritableStream = process.stdout): Logger {
  const format = process.env.WQUEUE_LOG_FORMAT ?? ((stream as { isTTY?: boolean }).isTTY ? "pretty" : "json");
  const options = { level, base: { pid: process.pid } };
  if (format !== "pretty") return pino(options, stream);
  const pretty = loadPinoPretty();
  if (pretty === undefined) {
    const logger = pino(options, stream);
    logger.info("readable log lines need pino-pretty (npm i -D pino-pretty); logging JSON meanwhile");
    return logger;
  }
  return pino(options, pretty({ colorize: true, sync: true, destination: stream, ignore: "pid,hostname" }));
}

type PinoPretty = (options: { colorize: boolean; sync: boolean; destination: NodeJS.WritableStream; ignore: string }) => DestinationStream;

function loadPinoPretty(): PinoPretty | undefined {
  try {
    return createRequire(import.meta.url)("pino-pretty") as PinoPretty;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND") return undefined;
    throw error;
  }
}
