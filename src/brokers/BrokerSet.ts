import { ConfigError } from "../errors.js";
import type { Broker, BrokerLog, BrokerSource } from "./contract.js";

export type { BrokerFactory, BrokerSource } from "./contract.js";
import { createBroker } from "./registry.js";
import { redactUrl } from "./url.js";

export const DEFAULT_BROKER_NAME = "default";


function isBroker(value: unknown): value is Broker {
  const broker = value as Partial<Record<keyof Broker, unknown>> | null;
  return (
    typeof broker === "object" &&
    broker !== null &&
    ["connect", "consumer", "publish", "close"].every((method) => typeof broker[method as keyof Broker] === "function")
  );
}

/** A ConfigError unless `source` is a URL, a Broker or a function; `what` names it in the line. */
export function checkBrokerSource(what: string, source: unknown): asserts source is BrokerSource {
  if (typeof source === "string" || typeof source === "function" || isBroker(source)) return;
  throw new ConfigError(`${what} must be a broker URL, a Broker (connect, consumer, publish, close) or a function returning one`);
}

/**
 * The brokers of one app in one process, by name: created and connected on first use, closed
 * together (Broker objects the app handed in included). "default" is the broker a subscription
 * gets when it names none.
 */
export class BrokerSet {
  readonly #sources: Map<string, BrokerSource>;
  /** Created, connected or not. */
  readonly #created = new Map<string, Promise<Broker>>();
  /** Created and connected. */
  readonly #opening = new Map<string, Promise<Broker>>();
  #closed: Promise<void> | undefined;

  constructor(
    defaultSource: BrokerSource,
    named: Readonly<Record<string, BrokerSource>> = {},
    /** Where adapters report reconnects and the like; the broker's redacted URL is prefixed. */
    readonly log: BrokerLog = () => {},
  ) {
    this.#sources = new Map(Object.entries(named));
    this.#sources.set(DEFAULT_BROKER_NAME, defaultSource);
  }

  #source(name: string): BrokerSource {
    const source = this.#sources.get(name);
    if (source === undefined) {
      const known = [...this.#sources.keys()].join(", ");
      throw new ConfigError(`unknown broker name "${name}" (the app defines: ${known})`);
    }
    return source;
  }

  /**
   * The URL behind a name, known without opening anything: the URL the app gave, or a Broker
   * object's own (redacted) url; undefined for a factory (nothing is known before it runs).
   */
  url(name: string = DEFAULT_BROKER_NAME): string | undefined {
    const source = this.#source(name);
    if (typeof source === "string") return source;
    return typeof source === "function" ? undefined : source.url;
  }

  /** Creates the broker behind a name; its log lines name its redacted URL once it is known. */
  async #create(name: string): Promise<Broker> {
    const source = this.#source(name);
    let shown = typeof source === "string" ? redactUrl(source) : `"${name}"`;
    const log: BrokerLog = (level, message) => this.log(level, `broker ${shown}: ${message}`);
    if (typeof source === "string") return createBroker(source, log);
    const broker = typeof source === "function" ? await source(log) : source;
    if (!isBroker(broker)) {
      throw new ConfigError(`broker "${name}": the factory returned no Broker (an object with connect, consumer, publish, close)`);
    }
    shown = broker.url;
    return broker;
  }

  /**
   * The broker for a name before it is connected, to ask what it can do (a worker refuses a queue
   * pattern on a broker without listQueues before connecting to it); get() connects the same one.
   */
  created(name: string = DEFAULT_BROKER_NAME): Promise<Broker> {
    if (this.#closed) return Promise.reject(new Error("broker set is closed"));
    let created = this.#created.get(name);
    if (!created) {
      created = this.#create(name);
      created.catch(() => this.#created.delete(name));
      this.#created.set(name, created);
    }
    return created;
  }

  /** The connected broker for a name; concurrent calls share one connection attempt. */
  get(name: string = DEFAULT_BROKER_NAME): Promise<Broker> {
    if (this.#closed) return Promise.reject(new Error("broker set is closed"));
    let opening = this.#opening.get(name);
    if (!opening) {
      opening = this.created(name).then(async (broker) => {
        await broker.connect();
        return broker;
      });
      // A failed attempt is forgotten, its broker too, so the next call tries again on a new one.
      opening.catch(() => {
        this.#opening.delete(name);
        this.#created.delete(name);
      });
      this.#opening.set(name, opening);
    }
    return opening;
  }

  close(): Promise<void> {
    this.#closed ??= Promise.allSettled(
      [...this.#created.values()].map(async (created) => (await created).close()),
    ).then(() => undefined);
    return this.#closed;
  }
}
