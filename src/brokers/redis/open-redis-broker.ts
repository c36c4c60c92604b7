import { ConfigError } from "../../errors.js";
import type { Broker } from "../contract.js";
import { RedisClients, type RedisEventLog } from "../shared/redis-clients.js";
import { booleanParam, intParam, parseBrokerHosts, redactUrl } from "../url.js";
import { RedisListBroker } from "./RedisListBroker.js";
import { RedisReliableBroker } from "./RedisReliableBroker.js";
import { RedisStreamBroker } from "./RedisStreamBroker.js";

/**
 * `redis://[:password@]host:port[/db][?mode=reliable|list|stream]` (and `rediss://` for TLS) -> the
 * Redis adapter of that mode. Each mode is one class; this file picks it, reads the mode's own URL
 * parameters; every mode opens its ioredis clients through RedisClients (shared/redis-clients.ts).
 *
 * - `reliable` (the default): lists, at least once; `?heartbeatTtl=MS` (default 10000), `?poll=MS`
 *   (default 100: how soon an idle queue's message is claimed while the worker waits on several).
 * - `list`: the seed's plain lists, at most once.
 * - both list modes: `?plain=true` publishes bodies only (headers and key dropped, no envelope).
 * - `stream`: Redis Streams with a consumer group, at least once; `?group=NAME` (default wqueue),
 *   `?claimIdle=MS` (default 30000), `?maxlen=N` (default 0: publish does not trim).
 * - every mode: `?cluster=true` opens a Redis Cluster from the seed nodes `redis://h1:p1,h2:p2`
 *   (./cluster-keys.ts); `?wait=N` makes publish return only once N replicas acknowledged the write
 *   (WAIT, bounded by `?waitTimeout=MS`, default 1000; see ./replica-wait.ts).
 */
/** Parameters of every mode, read here. */
const COMMON_PARAMS = ["mode", "cluster", "wait", "waitTimeout"];

const modes: Record<string, { params: string[]; open: (clients: RedisClients, url: URL) => Broker }> = {
  reliable: {
    params: ["heartbeatTtl", "poll", "plain"],
    open: (clients, url) =>
      new RedisReliableBroker(clients, {
        heartbeatTtlMs: atLeast(url, "heartbeatTtl", 10_000, 100),
        pollMs: atLeast(url, "poll", 100, 10),
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

export function openRedisBroker(url: string, onEvent?: RedisEventLog): Broker {
  const shown = redactUrl(url);
  const { url: parsed, hosts: nodes } = parseBrokerHosts(url, 6379);
  const cluster = booleanParam(parsed, "cluster", shown);
  if (nodes.length > 1 && !cluster) {
    throw new ConfigError(`broker ${shown}: several hosts make a Redis Cluster URL: add ?cluster=true`);
  }
  if (cluster && !/^\/?0?$/.test(parsed.pathname)) {
    throw new ConfigError(`broker ${shown}: a Redis Cluster has database 0 only; drop the path`);
  }
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
  const wait = { replicas: intParam(parsed, "wait", 0), timeoutMs: atLeast(parsed, "waitTimeout", 1000, 1) };
  const clients = new RedisClients(redisOnly(parsed), shown, onEvent ?? (() => {}), cluster ? nodes : undefined, wait);
  return chosen.open(clients, parsed);
}

/** The URL without wqueue's own parameters, which ioredis would otherwise take as client options. */
function redisOnly(url: URL): string {
  const copy = new URL(url);
  for (const name of COMMON_PARAMS) copy.searchParams.delete(name);
  for (const { params } of Object.values(modes)) for (const name of params) copy.searchParams.delete(name);
  return copy.toString();
}
