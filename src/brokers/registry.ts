import { createRequire } from "node:module";
import { ConfigError } from "../errors.js";
import type { Broker, BrokerLog } from "./contract.js";
import { sqliteDriver } from "./shared/sqlite-database.js";
import { parseBrokerHosts, redactUrl } from "./url.js";

/** Creates (does not connect) the broker for a URL of one scheme; `log` hears reconnects and the like. */
export type BrokerOpener = (url: string, log: BrokerLog) => Broker | Promise<Broker>;

/**
 * Broker URL scheme -> adapter. Adapters are imported lazily, so a worker that only uses SQLite
 * never loads the Redis client, and importing an app module loads none of them.
 */
const builtIn: Record<string, BrokerOpener> = {
  "memory:": async (url) => new (await import("./memory/MemoryBroker.js")).MemoryBroker(url),
  "redis:": async (url, log) => (await import("./redis/open-redis-broker.js")).openRedisBroker(url, log),
  "rediss:": async (url, log) => (await import("./redis/open-redis-broker.js")).openRedisBroker(url, log),
  "amqp:": async (url, log) => (await import("./amqp/open-amqp-broker.js")).openAmqpBroker(url, log),
  "amqps:": async (url, log) => (await import("./amqp/open-amqp-broker.js")).openAmqpBroker(url, log),
  "kafka:": async (url, log) => (await import("./kafka/open-kafka-broker.js")).openKafkaBroker(url, log),
  "sqs:": async (url, log) => (await import("./sqs/open-sqs-broker.js")).openSqsBroker(url, log),
  "kinesis:": async (url, log) => (await import("./kinesis/open-kinesis-broker.js")).openKinesisBroker(url, log),
  "nats:": async (url, log) => (await import("./nats/open-nats-broker.js")).openNatsBroker(url, log),
  "postgres:": async (url, log) => new (await import("./postgres/PostgresBroker.js")).PostgresBroker(url, log),
  "postgresql:": async (url, log) => new (await import("./postgres/PostgresBroker.js")).PostgresBroker(url, log),
  "mqtt:": async (url, log) => new (await import("./mqtt/MqttBroker.js")).MqttBroker(url, log),
  "mqtts:": async (url, log) => new (await import("./mqtt/MqttBroker.js")).MqttBroker(url, log),
  "sqlite:": async (url) => new (await import("./sqlite/SqliteBroker.js")).SqliteBroker(url),
};

/**
 * The npm packages a built-in scheme needs beyond wqueue's own dependencies: its broker client,
 * an optional peer dependency the user installs (`npm i wqueue ioredis`). They are checked before
 * the adapter is imported, so a missing one is a one-line ConfigError naming what to install.
 * A new adapter whose client is not a dependency adds its scheme here.
 */
const clientPackages: Record<string, (url: URL) => string[]> = {
  "redis:": () => ["ioredis"],
  "rediss:": () => ["ioredis"],
  "amqp:": () => ["amqplib"],
  "amqps:": () => ["amqplib"],
  "kafka:": () => ["kafkajs"],
  "sqs:": () => ["@aws-sdk/client-sqs"],
  "nats:": () => ["@nats-io/jetstream", "@nats-io/transport-node"],
  "postgres:": () => ["pg"],
  "postgresql:": () => ["pg"],
  "mqtt:": () => ["mqtt"],
  "mqtts:": () => ["mqtt"],
  // Node 24+ runs SQLite on the built-in node:sqlite; Node 20 and 22 on better-sqlite3.
  "sqlite:": () => sqliteClientPackages(),
  // Leases and checkpoints live in Redis unless `checkpoints=` names a SQLite file.
  "kinesis:": (url) => [
    "@aws-sdk/client-kinesis",
    "@smithy/node-http-handler",
    ...(url.searchParams.get("checkpoints")?.startsWith("sqlite:") ? sqliteClientPackages() : ["ioredis"]),
  ],
};

/**
 * Adapters registered from outside (`registerBroker`). Kept on a global symbol so that two copies
 * of this module (an app importing `wqueue` from another path than the CLI's) share one table.
 */
const REGISTERED = Symbol.for("wqueue.registered-brokers");
const shared = globalThis as { [REGISTERED]?: Map<string, BrokerOpener> };
shared[REGISTERED] ??= new Map();
const registered = shared[REGISTERED];

export const DEFAULT_BROKER_URL = "sqlite://wqueue.db";

/**
 * Makes `scheme://...` URLs (in `--broker`, WQUEUE_BROKER_URL, `new WQueue({ broker, brokers })`)
 * open with `open`: an adapter written outside wqueue. Call it at the top of the app module, so
 * the worker, its threads and `wqueue push --app` all see it. Registering a scheme again, a
 * built-in one included, replaces it.
 */
export function registerBroker(scheme: string, open: BrokerOpener): void {
  const name = scheme.endsWith(":") ? scheme.slice(0, -1) : scheme;
  if (!/^[a-z][a-z0-9+.-]*$/i.test(name)) {
    throw new ConfigError(`registerBroker: "${scheme}" is not a URL scheme (letters, digits, "+", "-", "." after a letter)`);
  }
  if (typeof open !== "function") throw new ConfigError(`registerBroker("${name}"): open must be a function (url, log) => Broker`);
  registered.set(`${name.toLowerCase()}:`, open);
}

export function supportedSchemes(): string[] {
  return [...new Set([...Object.keys(builtIn), ...registered.keys()])].map((scheme) => scheme.slice(0, -1));
}

/** The packages of `names` that cannot be resolved from here, i.e. that the adapter could not import. */
function sqliteClientPackages(): string[] {
  return sqliteDriver() === "better-sqlite3" ? ["better-sqlite3"] : [];
}

function missingPackages(names: string[]): string[] {
  const require = createRequire(import.meta.url);
  return names.filter((name) => {
    try {
      require.resolve(`${name}/package.json`);
      return false;
    } catch (error) {
      // ERR_PACKAGE_PATH_NOT_EXPORTED: installed, it only hides its package.json.
      return (error as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND";
    }
  });
}

/** Creates (does not connect) the adapter for a URL; a ConfigError for an unknown scheme or a missing client. */
export async function createBroker(url: string, log: BrokerLog = () => {}): Promise<Broker> {
  // Several hosts (a Redis Cluster's seeds) parse too: the adapter reads the list itself.
  const { url: parsed } = parseBrokerHosts(url, 0);
  const { protocol } = parsed;
  const outside = registered.get(protocol);
  if (outside) return outside(url, log);
  const open = builtIn[protocol];
  if (!open) {
    const known = supportedSchemes().join(", ");
    throw new ConfigError(`broker ${redactUrl(url)}: unknown scheme "${protocol.slice(0, -1)}" (available: ${known}; others through registerBroker)`);
  }
  const missing = missingPackages(clientPackages[protocol]?.(parsed) ?? []);
  if (missing.length > 0) {
    const them = missing.length === 1 ? `the package ${missing[0]}` : `the packages ${missing.join(" and ")}`;
    throw new ConfigError(`broker ${redactUrl(url)}: ${protocol.slice(0, -1)} needs ${them}, not installed: npm i ${missing.join(" ")}`);
  }
  return open(url, log);
}
