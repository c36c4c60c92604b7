import { ConfigError } from "../errors.js";

/**
 * Returns the URL with its password (and any `password` / `token` query value) replaced by `***`.
 * Every log and error line that shows a broker URL goes through here.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not parseable (a Redis Cluster's host list, say): hide "//user:...@" and secret parameters by hand.
    return url.replace(/(\/\/[^/:@]*:)[^@/]*@/, "$1***@").replace(/([?&](?:password|token|secret|sasl_password)=)[^&#]*/gi, "$1***");
  }
  if (parsed.password !== "") parsed.password = "***";
  for (const name of ["password", "token", "secret", "sasl_password"]) {
    if (parsed.searchParams.has(name)) parsed.searchParams.set(name, "***");
  }
  // A URL inside a parameter (kinesis://...?checkpoints=redis://:pw@host) hides its password too.
  for (const [name, value] of [...parsed.searchParams]) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) parsed.searchParams.set(name, redactUrl(value));
  }
  // The query is written back by hand: URLSearchParams would percent-encode "***" and nested URLs.
  const query = [...parsed.searchParams].map(([name, value]) => `${name}=${value.replace(/[&#\s%]/g, encodeURIComponent)}`);
  parsed.search = "";
  const base = parsed.toString().replaceAll("%2A%2A%2A", "***");
  return query.length > 0 ? `${base}?${query.join("&")}` : base;
}

/** Parses a broker URL, failing with a ConfigError that shows only the redacted form. */
export function parseBrokerUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new ConfigError(`invalid broker URL: ${redactUrl(url)}`);
  }
}

/** One host of a URL that lists several (`redis://h1:p1,h2:p2`: Redis Cluster seeds). */
export interface BrokerHost {
  host: string;
  port: number;
}

/**
 * Parses a broker URL whose authority may list several hosts, `scheme://[user:password@]h1:p1,h2:p2[/path][?query]`,
 * which the WHATWG parser refuses: the list is cut out first and the rest parsed with the first host
 * in its place (`url`); `hosts` lists them all (one for an ordinary URL; `defaultPort` where a host
 * gives none). Errors show the redacted URL only.
 */
export function parseBrokerHosts(url: string, defaultPort: number): { url: URL; hosts: BrokerHost[] } {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*@)?([^/?#]*)(.*)$/i.exec(url);
  const list = match?.[3] ?? "";
  if (!match || !list.includes(",")) {
    const parsed = parseBrokerUrl(url);
    return { url: parsed, hosts: [{ host: parsed.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1", port: Number(parsed.port || defaultPort) }] };
  }
  const hosts = list.split(",").map((entry) => {
    const hostPort = /^(\[[^\]]+\]|[^:\s]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    if (!hostPort) throw new ConfigError(`broker ${redactUrl(url)}: "${entry}" is not host:port in its list of hosts`);
    return { host: (hostPort[1] as string).replace(/^\[|\]$/g, ""), port: Number(hostPort[2] ?? defaultPort) };
  });
  const first = list.split(",")[0] as string;
  return { url: parseBrokerUrl(`${match[1]}${match[2] ?? ""}${first}${match[4]}`), hosts };
}

/** Reads a non-negative integer query parameter, with a default and a clear error. */
export function intParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new ConfigError(`broker URL parameter ${name}=${raw} must be a whole number >= 0`);
  }
  return value;
}

/** A whole-number query parameter within [min, max], with a default and an error naming the URL. */
export function rangeParam(url: URL, name: string, fallback: number, min: number, max: number, shown: string): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`broker ${shown}: ${name}=${raw} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

/** A true/false (or 1/0) query parameter; absent is false. */
export function booleanParam(url: URL, name: string, shown: string): boolean {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "false" || raw === "0") return false;
  if (raw === "true" || raw === "1") return true;
  throw new ConfigError(`broker ${shown}: ${name}=${raw} must be true or false`);
}

/** A URL's user or password part, percent-decoded (left as it is when malformed). */
export function decodeUserInfo(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
