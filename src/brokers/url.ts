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
    // Not parseable: hide anything between "//user:" and "@" by hand.
    return url.replace(/(\/\/[^/:@]*:)[^@/]*@/, "$1***@");
  }
  if (parsed.password !== "") parsed.password = "***";
  for (const name of ["password", "token", "secret", "sasl_password"]) {
    if (parsed.searchParams.has(name)) parsed.searchParams.set(name, "***");
  }
  return parsed.toString().replaceAll("%2A%2A%2A", "***");
}

/** Parses a broker URL, failing with a ConfigError that shows only the redacted form. */
export function parseBrokerUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new ConfigError(`invalid broker URL: ${redactUrl(url)}`);
  }
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
