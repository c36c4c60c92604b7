import { ConfigError } from "../../errors.js";
import { parseBrokerUrl, redactUrl } from "../url.js";
import { validName, validSubjectPart } from "./subjects.js";

/**
 * `nats://[user:password@|token@]host[:port][?options]` for NATS JetStream. Credentials follow the
 * NATS convention: user and password, or a user part alone (or `?token=`) as an auth token.
 *
 * - `stream` (default: one stream per queue, see ./subjects.ts): put every queue in this one stream,
 *   which wqueue creates (or extends with the queue's subject) when it is missing.
 * - `subjectPrefix` (default none): the queue `orders` is the subject `<prefix>orders`.
 * - `durable` (default `wqueue`): the name of the durable pull consumer that every worker of a
 *   queue shares (competing consumers); workers with another name read the queue separately.
 * - `ackWait` (ms, default 30000): how long a received, unsettled message stays with its worker
 *   before JetStream gives it to another (a dead worker's messages come back after it).
 * - `maxDeliver` (default unlimited): JetStream stops delivering a message after this many
 *   deliveries. Unlimited by default, because the worker's retry policy dead-letters a failing
 *   message itself (with the error), and poison detection needs the redeliveries to go on.
 * - `maxAckPending` (default unlimited): the consumer's limit of unacked messages across all
 *   workers. Unlimited by default: each worker bounds itself (maxInFlight), and retries parked with
 *   a delay count as unacked, so JetStream's default (1000) could stall a queue with many retries.
 * - `tls` (default false): TLS to the server.
 */
export interface NatsUrl {
  /** Redacted: the only form that goes into logs and errors. */
  url: string;
  /** `host:port` for the client. */
  server: string;
  user: string | undefined;
  pass: string | undefined;
  token: string | undefined;
  /** Password and token, so messages echoed by the server or the OS can be scrubbed of them. */
  secrets: string[];
  tls: boolean;
  stream: string | undefined;
  subjectPrefix: string;
  durable: string;
  ackWaitMs: number;
  /** -1: unlimited. */
  maxDeliver: number;
  /** -1: unlimited. */
  maxAckPending: number;
}

const KNOWN = ["stream", "subjectPrefix", "durable", "ackWait", "maxDeliver", "maxAckPending", "tls", "token"];

export function parseNatsUrl(url: string): NatsUrl {
  const parsed = parseBrokerUrl(url);
  const shown = redactNatsUrl(url);
  const fail = (why: string) => new ConfigError(`broker ${shown}: ${why}`);
  if (parsed.protocol !== "nats:") throw fail("not a nats:// URL");
  if (parsed.hostname === "") throw fail("the URL names no host");
  const params = parsed.searchParams;
  const unknown = [...params.keys()].filter((name) => !KNOWN.includes(name));
  if (unknown.length > 0) throw fail(`unknown option ${unknown.join(", ")} (known: ${KNOWN.join(", ")})`);

  const user = decode(parsed.username);
  const password = decode(parsed.password);
  // A user part without a password is a token, as in `nats://s3cret@host` (NATS convention).
  const token = params.get("token") ?? (user !== "" && password === "" ? user : undefined);
  const withUser = user !== "" && password !== "";

  const stream = params.get("stream") ?? undefined;
  if (stream !== undefined && !validName(stream)) throw fail(`stream=${stream} is not a valid stream name`);
  const subjectPrefix = params.get("subjectPrefix") ?? "";
  if (subjectPrefix !== "" && !validSubjectPart(subjectPrefix)) {
    throw fail(`subjectPrefix=${subjectPrefix} may not hold spaces, wildcards or empty tokens (e.g. \`jobs.\`)`);
  }
  const durable = params.get("durable") ?? "wqueue";
  if (!validName(durable)) throw fail(`durable=${durable} is not a valid consumer name`);

  return {
    url: shown,
    server: `${parsed.hostname}:${parsed.port === "" ? "4222" : parsed.port}`,
    user: withUser ? user : undefined,
    pass: withUser ? password : undefined,
    token,
    secrets: [password, token ?? ""].filter((secret) => secret.length >= 3),
    tls: bool(params.get("tls"), "tls", fail),
    stream,
    subjectPrefix,
    durable,
    ackWaitMs: positive(params.get("ackWait"), "ackWait", 30_000, fail),
    maxDeliver: limit(params.get("maxDeliver"), "maxDeliver", fail),
    maxAckPending: limit(params.get("maxAckPending"), "maxAckPending", fail),
  };
}

/** redactUrl, plus a token given as the user part (`nats://s3cret@host`), which it cannot know of. */
export function redactNatsUrl(url: string): string {
  const shown = redactUrl(url);
  const parsed = URL.canParse(shown) ? new URL(shown) : undefined;
  if (parsed === undefined || parsed.username === "" || parsed.password !== "") return shown;
  parsed.username = "***";
  return parsed.toString().replaceAll("%2A%2A%2A", "***");
}

type Fail = (why: string) => ConfigError;

function positive(raw: string | null, name: string, fallback: number, fail: Fail): number {
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw fail(`${name}=${raw} must be a whole number of ms >= 1`);
  return value;
}

/** A count where -1 (or 0, or absent) means unlimited. */
function limit(raw: string | null, name: string, fail: Fail): number {
  if (raw === null) return -1;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < -1) throw fail(`${name}=${raw} must be a whole number (-1: unlimited)`);
  return value <= 0 ? -1 : value;
}

function bool(raw: string | null, name: string, fail: Fail): boolean {
  if (raw === null || raw === "false" || raw === "0") return false;
  if (raw === "true" || raw === "1") return true;
  throw fail(`${name}=${raw} must be true or false`);
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
