import { Cluster, Redis, type RedisOptions } from "ioredis";
import { BrokerUnreachableError, ConfigError } from "../../errors.js";
import type { BrokerHost } from "../url.js";

/** `?wait=N&waitTimeout=MS` of a Redis URL. */
export interface ReplicaWait {
  replicas: number;
  timeoutMs: number;
}

/** Where an adapter reports connection trouble; messages never contain the password. */
export type RedisEventLog = (level: "debug" | "info" | "warn" | "error", message: string) => void;

const CONNECT_TIMEOUT_MS = 3000;
/** A command connection silent this long with a reply outstanding is dead (a zombie): reconnect. */
const COMMAND_SILENCE_MS = 30_000;
/** On a Cluster: how often the slot map is read again (a failover moves slots without telling clients). */
const SLOTS_REFRESH_MS = 1000;
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
 *
 * With `clusterNodes` (a `?cluster=true` URL) every client is an ioredis `Cluster` over those seed
 * nodes instead, typed as a Redis: it answers the same keyed commands and scripts, routing each to
 * the master of its key's slot, one connection per node. What a Cluster cannot route (several
 * keys of different slots in one call, blocking reads interrupted by CLIENT UNBLOCK) the callers
 * check `client.isCluster` for.
 */
export class RedisClients {
  constructor(
    readonly secretUrl: string,
    /** Redacted: the only form that goes into messages. */
    readonly url: string,
    readonly log: RedisEventLog,
    readonly clusterNodes?: readonly BrokerHost[],
    /** `?wait=N&waitTimeout=MS`: what publish waits for (../redis/replica-wait.ts); 0 replicas: nothing. */
    readonly replicaWait: ReplicaWait = { replicas: 0, timeoutMs: 1000 },
  ) {}

  /** True when the URL asked for a Redis Cluster. */
  get cluster(): boolean {
    return this.clusterNodes !== undefined;
  }

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
      // ioredis' Cluster says only "Failed to refresh slots cache": no seed answered CLUSTER SLOTS.
      const hint = this.cluster ? " (no seed node answered as a Redis Cluster node: are they up, and started with cluster-enabled yes?)" : "";
      throw new BrokerUnreachableError(`cannot reach Redis at ${this.url}: ${this.scrub(cause.message)}${hint}`);
    } finally {
      clearTimeout(deadline);
      client.off("error", remember);
    }
  }

  /** SELECTs the URL's database again, this time hearing the refusal (ioredis only emits it). */
  async #selectDatabase(client: Redis): Promise<void> {
    if (this.cluster) return; // a Cluster has database 0 only; the URL parser refuses another
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
    const common = {
      connectionName: `wqueue-${role}-${process.pid}`, // tells connections apart in CLIENT LIST
      connectTimeout: CONNECT_TIMEOUT_MS,
    };
    const retry = (times: number) => Math.min(100 * 2 ** times, 5000);
    const client = this.clusterNodes
      ? this.#cluster(common, retry, options)
      : new Redis(this.secretUrl, { ...common, retryStrategy: retry, ...options });
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

  /** The Cluster counterpart of `new Redis(url, options)`: credentials and TLS from the URL, for every node. */
  #cluster(common: RedisOptions, retry: (times: number) => number, options: RedisOptions): Redis {
    const url = new URL(this.secretUrl);
    const { lazyConnect, enableOfflineQueue, ...perNode } = options;
    const cluster = new Cluster([...(this.clusterNodes ?? [])], {
      lazyConnect,
      enableOfflineQueue: enableOfflineQueue ?? true,
      clusterRetryStrategy: retry,
      // ioredis refreshes its slot map on MOVED only; a master that died without a word is noticed
      // by this poll of CLUSTER SLOTS, so commands go to the promoted replica within about a second.
      slotsRefreshInterval: SLOTS_REFRESH_MS,
      redisOptions: {
        ...common,
        ...perNode,
        username: url.username === "" ? undefined : decodeURIComponent(url.username),
        password: url.password === "" ? undefined : decodeURIComponent(url.password),
        tls: url.protocol === "rediss:" ? {} : undefined,
      },
    });
    cluster.on("node error", (error: Error, node: string) => this.log("warn", `redis ${this.url} (node ${node}): ${this.scrub(error.message)}`));
    return cluster as unknown as Redis;
  }
}
