import { ConfigError } from "../../../errors.js";
import type { BrokerLog } from "../../contract.js";
import { redactUrl } from "../../url.js";
import type { LeaseStore } from "./LeaseStore.js";

/**
 * Lease store URL scheme -> implementation. Each is imported only when chosen, so a SQLite user
 * never loads ioredis, and the reverse.
 */
const stores: Record<string, (url: string, app: string, log: BrokerLog) => Promise<LeaseStore>> = {
  "redis:": async (url, app, log) => new (await import("./RedisLeaseStore.js")).RedisLeaseStore(url, app, log),
  "rediss:": async (url, app, log) => new (await import("./RedisLeaseStore.js")).RedisLeaseStore(url, app, log),
  "sqlite:": async (url, app) => new (await import("./SqliteLeaseStore.js")).SqliteLeaseStore(url, app),
};

/**
 * Creates (does not connect) the lease store of Kinesis application `app` at `url`. ConfigError,
 * naming the redacted URL, for a malformed URL, an unknown scheme or an empty app name. `log`
 * hears of Redis reconnects, with the redacted URL.
 */
export async function openLeaseStore(url: string, app: string, log: BrokerLog = () => {}): Promise<LeaseStore> {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new ConfigError(`invalid lease store URL: ${redactUrl(url)}`);
  }
  const open = stores[protocol];
  if (!open) {
    const known = Object.keys(stores)
      .map((scheme) => scheme.slice(0, -1))
      .join(", ");
    throw new ConfigError(`lease store ${redactUrl(url)}: unsupported scheme "${protocol.slice(0, -1)}" (supported: ${known})`);
  }
  if (app === "") throw new ConfigError(`lease store ${redactUrl(url)}: the application name is empty`);
  return open(url, app, log);
}
