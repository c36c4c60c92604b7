import { ConfigError } from "../errors.js";
import type { Broker, BrokerLog } from "./contract.js";
import { createBroker } from "./registry.js";
import { redactUrl } from "./url.js";

export const DEFAULT_BROKER_NAME = "default";

/**
 * The brokers of one app in one process, by name: created and connected on first use, closed
 * together. "default" is the broker a subscription gets when it names none.
 */
export class BrokerSet {
  readonly #urls: Map<string, string>;
  readonly #opening = new Map<string, Promise<Broker>>();
  #closed: Promise<void> | undefined;

  constructor(
    defaultUrl: string,
    named: Record<string, string> = {},
    /** Where adapters report reconnects and the like; the broker's redacted URL is prefixed. */
    readonly log: BrokerLog = () => {},
  ) {
    this.#urls = new Map(Object.entries(named));
    this.#urls.set(DEFAULT_BROKER_NAME, defaultUrl);
  }

  /** The redacted URL behind a name, for logs. */
  describe(name: string): string {
    return redactUrl(this.url(name));
  }

  url(name: string): string {
    const url = this.#urls.get(name);
    if (url === undefined) {
      const known = [...this.#urls.keys()].join(", ");
      throw new ConfigError(`unknown broker name "${name}" (the app defines: ${known})`);
    }
    return url;
  }

  /** The connected broker for a name; concurrent calls share one connection attempt. */
  get(name: string = DEFAULT_BROKER_NAME): Promise<Broker> {
    if (this.#closed) return Promise.reject(new Error("broker set is closed"));
    let opening = this.#opening.get(name);
    if (!opening) {
      const url = this.url(name);
      const shown = redactUrl(url);
      opening = createBroker(url, (level, message) => this.log(level, `broker ${shown}: ${message}`)).then(async (broker) => {
        await broker.connect();
        return broker;
      });
      // A failed attempt is forgotten so the next call tries again.
      opening.catch(() => this.#opening.delete(name));
      this.#opening.set(name, opening);
    }
    return opening;
  }

  close(): Promise<void> {
    this.#closed ??= Promise.allSettled(
      [...this.#opening.values()].map(async (opening) => (await opening).close()),
    ).then(() => undefined);
    return this.#closed;
  }
}
