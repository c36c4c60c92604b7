import { ConfigError } from "../../errors.js";
import { MAX_PRIORITY } from "../contract.js";
import { parseBrokerUrl, redactUrl } from "../url.js";

/**
 * `amqp://user:pass@host:5672/vhost?durable=true&queueType=classic` (`amqps://` for TLS).
 * wqueue reads its own parameters and hands the rest of the URL to amqplib, which understands
 * `heartbeat`, `frameMax`, `channelMax` and `locale`; the vhost is the path (`/` by default).
 *
 * - `durable` (default true): queues survive a broker restart and messages are published
 *   persistent. `false` declares transient queues and non-persistent messages.
 * - `queueType` (default classic): `classic` or `quorum` (replicated; needs durable queues).
 * - `maxPriority` (1-9, default none): declares classic queues with `x-max-priority`, so messages
 *   published with `priority` are delivered highest first. Opt-in because RabbitMQ cannot add the
 *   argument to an existing queue (406 PRECONDITION_FAILED: ./QueueDeclarer.ts says so plainly).
 */
export type QueueType = "classic" | "quorum";

export interface AmqpUrl {
  /** What amqplib connects to: credentials included, wqueue's own parameters removed. */
  connectUrl: string;
  /** Redacted: the only form that goes into logs and errors. */
  url: string;
  /** The password, so messages echoed by the server or the OS can be scrubbed of it. */
  password: string;
  durable: boolean;
  queueType: QueueType;
  /** `x-max-priority` of the queues wqueue declares; undefined: no priorities. */
  maxPriority?: number;
}

const QUEUE_TYPES: readonly QueueType[] = ["classic", "quorum"];

export function parseAmqpUrl(url: string): AmqpUrl {
  const parsed = parseBrokerUrl(url);
  const shown = redactUrl(url);
  if (parsed.protocol !== "amqp:" && parsed.protocol !== "amqps:") {
    throw new ConfigError(`broker ${shown}: not an amqp:// or amqps:// URL`);
  }
  const durable = booleanParam(parsed, "durable", true, shown);
  const queueType = (parsed.searchParams.get("queueType") ?? "classic") as QueueType;
  if (!QUEUE_TYPES.includes(queueType)) {
    throw new ConfigError(`broker ${shown}: queueType=${queueType} must be one of ${QUEUE_TYPES.join(", ")}`);
  }
  if (queueType === "quorum" && !durable) {
    throw new ConfigError(`broker ${shown}: quorum queues are always durable; drop durable=false`);
  }
  const maxPriority = priorityParam(parsed, shown);
  if (maxPriority !== undefined && queueType === "quorum") {
    throw new ConfigError(`broker ${shown}: maxPriority is for classic queues; quorum queues ignore x-max-priority`);
  }
  parsed.searchParams.delete("durable");
  parsed.searchParams.delete("queueType");
  parsed.searchParams.delete("maxPriority");
  return {
    connectUrl: parsed.toString(),
    url: shown,
    password: safeDecode(parsed.password),
    durable,
    queueType,
    maxPriority,
  };
}

function priorityParam(url: URL, shown: string): number | undefined {
  const raw = url.searchParams.get("maxPriority");
  if (raw === null) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1 || value > MAX_PRIORITY) {
    throw new ConfigError(`broker ${shown}: maxPriority=${raw} must be an integer from 1 to ${MAX_PRIORITY}`);
  }
  return value;
}

function booleanParam(url: URL, name: string, fallback: boolean, shown: string): boolean {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new ConfigError(`broker ${shown}: ${name}=${raw} must be true or false`);
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
