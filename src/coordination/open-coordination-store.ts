import type { BrokerLog, BrokerSource } from "../brokers/contract.js";
import { redactUrl } from "../brokers/url.js";
import { ConfigError } from "../errors.js";
import type { CoordinationStore } from "./CoordinationStore.js";

/** Schemes a coordination store can live on; each is imported only when chosen. */
const stores: Record<string, (url: string, log: BrokerLog) => Promise<CoordinationStore>> = {
  "redis:": async (url, log) => new (await import("./RedisCoordinationStore.js")).RedisCoordinationStore(url, log),
  "rediss:": async (url, log) => new (await import("./RedisCoordinationStore.js")).RedisCoordinationStore(url, log),
  "sqlite:": async (url) => new (await import("./SqliteCoordinationStore.js")).SqliteCoordinationStore(url),
};

function schemeOf(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase();
}

/** Throws one ConfigError unless `url` is a redis://, rediss:// or sqlite:// URL. */
export function checkCoordinationUrl(url: unknown): void {
  if (typeof url !== "string" || stores[schemeOf(url) ?? ""] === undefined) {
    const shown = typeof url === "string" ? redactUrl(url) : String(url);
    throw new ConfigError(`new WQueue({ coordination }) must be a redis://, rediss:// or sqlite:// URL, got ${shown}`);
  }
}

/**
 * Where a queue's flow control (and, for the default broker, cron) is coordinated: the queue's own
 * broker when it is a Redis or SQLite URL, else the app's `coordination` URL, else undefined.
 */
export function coordinationUrlFor(broker: BrokerSource | undefined, coordination: string | undefined): string | undefined {
  if (typeof broker === "string" && stores[schemeOf(broker) ?? ""] !== undefined) return broker;
  return coordination;
}

/**
 * The stores of one worker, one per URL, opened on first use (none connects before an operation)
 * and closed together.
 */
export class CoordinationStores {
  readonly #open = new Map<string, Promise<CoordinationStore>>();

  constructor(readonly log: BrokerLog = () => {}) {}

  get(url: string): Promise<CoordinationStore> {
    let store = this.#open.get(url);
    if (store === undefined) {
      checkCoordinationUrl(url);
      store = (stores[schemeOf(url) as string] as (typeof stores)[string])(url, this.log);
      this.#open.set(url, store);
    }
    return store;
  }

  async close(): Promise<void> {
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.allSettled(all.map(async (store) => (await store).close()));
  }
}
