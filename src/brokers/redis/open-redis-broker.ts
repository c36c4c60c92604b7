import { Redis, type RedisOptions } from "ioredis";
import { BrokerUnreachableError, ConfigError } from "../../errors.js";
import type { Broker } from "../contract.js";
import { booleanParam, intParam, parseBrokerUrl, redactUrl } from "../url.js";
import { RedisListBroker } from "./RedisListBroker.js";
import { RedisReliableBroker } from "./RedisReliableBroker.js";
import { RedisStreamBroker } from "./RedisStreamBroker.js";

/**
 * `redis://[:password@]host:port[/db][?mode=reliable|list|stream]` (and `rediss://` for TLS) -> the
 * Redis adapter of that mode. Each mode is one class; this file picks it, reads the mode's own URL
 * parameters, and owns how every mode opens its ioredis clients (RedisClients).
 *
 * - `reliable` (the default): lists, at least once; `?heartbeatTtl=MS` (default 10000).
 * - `list`: the seed's plain lists, at most once.
 * - both list modes: `?plain=true` publishes bodies only (headers and key dropped, no envelope).
 * - `stream`: Redis Streams with a consumer group, at least once; `?group=NAME` (default wqueue),
 *   `?claimIdle=MS` (default 30000), `?maxlen=N` (default 0: publish does not trim).
 */
const modes: Record<string, { params: string[]; open: (clients: RedisClients, url: URL) => Broker }> = {
  reliable: {
    params: ["heartbeatTtl", "plain"],
    open: (clients, url) =>
      new RedisReliableBroker(clients, {
        heartbeatTtlMs: atLeast(url, "heartbeatTtl", 10_000, 100),
        plain: booleanParam(url, "plain", clients.url),
      }),
  },
  list: { params: ["plain"], open: (clients, url) => new RedisListBroker(clients, { plain: booleanParam(url, "plain", clients.url) }) },
  stream: {
    params: ["group", "claimIdle", "maxlen"],
    open: (clients, url) =>
      new RedisStreamBroker(clients, {
        group: url.searchParams.get("group") || "wqueue",
        claimIdleMs: atLeast(url, "claimIdle", 30_000, 10),
        maxlen: intParam(url, "maxlen", 0),
      }),
  },
};
export const DEFAULT_MODE = "reliable";

function atLeast(url: URL, name: string, fallback: number, least: number): number {
  const value = intParam(url, name, fallback);
  if (value < least) throw new ConfigError(`broker URL parameter ${name}=${value} must be at least ${least}`);
  return value;
}

/** Where an adapter reports connection trouble; messages never contain the password. */
export type RedisEventLog = (level: "debug" | "info" | "warn" | "error", message: string) => void;

export function openRedisBroker(url: string, onEvent?: RedisEventLog): Broker {
  const parsed = parseBrokerUrl(url);
  const shown = redactUrl(url);
  const mode = parsed.searchParams.get("mode") ?? DEFAULT_MODE;
  const chosen = modes[mode];
  if (!chosen) {
    throw new ConfigError(`broker ${shown}: unknown mode=${mode} (valid: ${Object.keys(modes).join(", ")}; default ${DEFAULT_MODE})`);
  }
  if (!/^\/?\d*$/.test(parsed.pathname)) {
    throw new ConfigError(`broker ${shown}: the path must be a database number, as in redis://host:6379/0`);
  }
  for (const name of new Set(Object.values(modes).flatMap(({ params }) => params))) {
    if (!parsed.searchParams.has(name) || chosen.params.includes(name)) continue;
    const owners = Object.keys(modes).filter((other) => modes[other]?.params.includes(name));
    throw new ConfigError(`broker ${shown}: ?${name}= applies to mode=${owners.join(" or mode=")} only, not mode=${mode}`);
  }
  return chosen.open(new RedisClients(redisOnly(parsed), shown, onEvent ?? (() => {})), parsed);
}

/** The URL without wqueue's own parameters, which ioredis would otherwise take as client options. */
function redisOnly(url: URL): string {
  const copy = new URL(url);
  copy.searchParams.delete("mode");
  for (const { params } of Object.values(modes)) for (const name of params) copy.searchParams.delete(name);
  return copy.toString();
}

const CONNECT_TIMEOUT_MS = 3000;
/** A command connection silent this long with a reply outstanding is dead (a zombie): reconnect. */
const COMMAND_SILENCE_MS = 30_000;
/** quit() waits this long for Redis to say goodbye, then drops the connection. */
const QUIT_DEADLINE_MS = 1000;

/**
 * Opens ioredis clients with wqueue's settings. `connect()` fails fast: BrokerUnreachableError
 * (redacted URL) within about CONNECT_TIMEOUT_MS when Redis does not answer, and ConfigError when
 * it answers but refuses what the URL asks (a wrong password or user: WRONGPASS; no password where
 * one is required: NOAUTH; a database number it does not have), which ioredis would otherwise only
 * report as an event, and for SELECT quietly stay on database 0. Once connected, a lost connection is
 * retried forever with capped exponential backoff, and reported through `log`; so is a connection
 * that goes silent while a reply is due (ioredis `socketTimeout`), which would otherwise hang its
 * commands forever.
 */
export class RedisClients {
  constructor(
    readonly secretUrl: string,
    /** Redacted: the only form that goes into messages. */
    readonly url: string,
    readonly log: RedisEventLog,
  ) {}

  /**
   * A connected client for commands; commands issued while it reconnects wait a few retries.
   * `extra` adds client options (e.g. auto-pipelining for many small concurrent commands).
   */
  async connect(role: string, extra: RedisOptions = {}): Promise<Redis> {
    const client = this.#create(role, { lazyConnect: true, maxRetriesPerRequest: 5, socketTimeout: COMMAND_SILENCE_MS, ...extra });
    let lastError: Error | undefined;
    const remember = (error: Error) => {
      lastError = error;
    };
    client.on("error", remember);
    // connectTimeout covers the TCP connect only; this also bounds the handshake (AUTH, ready check).
    const deadline = setTimeout(() => client.disconnect(), CONNECT_TIMEOUT_MS + 1000);
    try {
      await client.connect();
      await this.#selectDatabase(client);
      return client;
    } catch (error) {
      client.disconnect(); // stop ioredis from retrying in the background
      if (error instanceof ConfigError) throw error;
      const cause = lastError ?? (error as Error);
      if (cause.name === "ReplyError") throw new ConfigError(`Redis at ${this.url} refused the connection: ${this.scrub(cause.message)}`);
      throw new BrokerUnreachableError(`cannot reach Redis at ${this.url}: ${this.scrub(cause.message)}`);
    } finally {
      clearTimeout(deadline);
      client.off("error", remember);
    }
  }

  /** SELECTs the URL's database again, this time hearing the refusal (ioredis only emits it). */
  async #selectDatabase(client: Redis): Promise<void> {
    const path = new URL(this.secretUrl).pathname.slice(1);
    if (path === "" || Number(path) === 0) return;
    await client.select(Number(path)).catch((error: Error) => {
      throw error.name === "ReplyError" ? new ConfigError(`Redis at ${this.url} refused database ${path}: ${this.scrub(error.message)}`) : error;
    });
  }

  /**
   * A client for one blocking reader: connects in the background and reconnects forever. Commands
   * fail at once while it is down, and a connection lost mid-command fails that command (no
   * offline queue, no resend), so the reader loop alone decides what to send when. `silenceMs`
   * must exceed its longest blocking command: a reply that late means a dead link, and ioredis
   * then drops the connection and reconnects (the reader's watchdog).
   */
  background(role: string, silenceMs: number): Redis {
    return this.#create(role, { enableOfflineQueue: false, maxRetriesPerRequest: 0, socketTimeout: silenceMs });
  }

  /** QUIT, bounded: a connection that does not answer within QUIT_DEADLINE_MS is dropped. */
  async quit(client: Redis): Promise<void> {
    const deadline = setTimeout(() => client.disconnect(), QUIT_DEADLINE_MS);
    await client.quit().catch(() => client.disconnect());
    clearTimeout(deadline);
    // ioredis 5 leaves a pending socketTimeout timer armed after a dropped connection, holding the
    // process open for up to its length; a closed broker must not. (A no-op should the field go.)
    clearTimeout((client as unknown as { socketTimeoutTimer?: NodeJS.Timeout }).socketTimeoutTimer);
  }

  /** Hides the password should a server or library ever echo it. */
  scrub(message: string): string {
    const password = decodeURIComponent(new URL(this.secretUrl).password);
    return password === "" ? message : message.replaceAll(password, "***");
  }

  #create(role: string, options: RedisOptions): Redis {
    const client = new Redis(this.secretUrl, {
      connectionName: `wqueue-${role}-${process.pid}`, // tells connections apart in CLIENT LIST
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: (times) => Math.min(100 * 2 ** times, 5000),
      ...options,
    });
    let wasReady = false;
    client.on("error", (error: Error) => {
      this.log(wasReady ? "warn" : "debug", `redis ${this.url} (${role}): ${this.scrub(error.message)}`);
    });
    client.on("reconnecting", (delayMs: number) => {
      if (wasReady) this.log("warn", `redis ${this.url} (${role}): connection lost, reconnecting in ${delayMs} ms`);
    });
    client.on("ready", () => {
      if (wasReady) this.log("info", `redis ${this.url} (${role}): reconnected`);
      wasReady = true;
    });
    return client;
  }
}
