import { ConfigError } from "../../errors.js";
import { intParam, parseBrokerUrl, redactUrl } from "../url.js";

/**
 * `postgres://user:pass@host:5432/db?schema=wqueue&lease=30000&poll=30000&retention=0&pool=10`
 * (`postgresql://` too). wqueue's parameters are taken out of the URL; everything else (sslmode,
 * application_name, ...) goes to node-postgres as it is.
 */
export interface PostgresUrl {
  /** Connection string for node-postgres, without wqueue's parameters. */
  connectionString: string;
  /** Schema holding the tables and the `publish` function; also the LISTEN channel's name. */
  schema: string;
  /** How long a claimed row stays hidden from other consumers unless extended. */
  leaseMs: number;
  /** Fallback look at an idle queue, for a notification missed while the listener reconnected. */
  pollMs: number;
  /** 0: an acked row is deleted. More: it is kept (marked done) this long, then deleted. */
  retentionMs: number;
  /** Most connections of the broker's pool (the listener has one more of its own). */
  poolSize: number;
}

export const DEFAULT_SCHEMA = "wqueue";
export const DEFAULT_LEASE_MS = 30_000;
export const DEFAULT_POLL_MS = 30_000;
export const DEFAULT_POOL_SIZE = 10;
const OWN_PARAMS = ["schema", "lease", "poll", "retention", "pool"];

export function parsePostgresUrl(url: string): PostgresUrl {
  const parsed = parseBrokerUrl(url);
  const shown = redactUrl(url);
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") throw new ConfigError(`not a postgres URL: ${shown}`);
  const schema = parsed.searchParams.get("schema") ?? DEFAULT_SCHEMA;
  // Interpolated into DDL and used as a LISTEN channel: plain lower-case identifiers only.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new ConfigError(`broker ${shown}: schema=${schema} must be a lower-case identifier (letters, digits, _)`);
  }
  const positive = (name: string, fallback: number) => {
    const value = intParam(parsed, name, fallback);
    if (value < 1) throw new ConfigError(`broker ${shown}: ${name}=${value} must be >= 1`);
    return value;
  };
  const config: PostgresUrl = {
    connectionString: "",
    schema,
    leaseMs: positive("lease", DEFAULT_LEASE_MS),
    pollMs: positive("poll", DEFAULT_POLL_MS),
    retentionMs: intParam(parsed, "retention", 0),
    poolSize: positive("pool", DEFAULT_POOL_SIZE),
  };
  for (const name of OWN_PARAMS) parsed.searchParams.delete(name);
  config.connectionString = parsed.toString();
  return config;
}
