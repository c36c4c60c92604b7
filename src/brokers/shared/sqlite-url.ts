import { resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { redactUrl } from "../url.js";

/**
 * `sqlite://PATH[?visibility=MS&poll=MS]`, parsed by hand: the WHATWG parser would read the first
 * path segment of `sqlite://wqueue.db` or `sqlite://./dir/x.db` as a host. So `sqlite://wqueue.db`
 * is relative to the working directory and `sqlite:///abs/x.db` is absolute. The path is taken
 * literally (no percent-decoding), so a file name works as typed.
 */
export interface SqliteUrl {
  /** Absolute path of the database file. */
  path: string;
  /** How long a received message stays invisible to others before it is handed out again. */
  visibilityMs: number;
  /** How often an idle consumer looks for work written by other processes. */
  pollMs: number;
}

export const DEFAULT_VISIBILITY_MS = 30_000;
export const DEFAULT_POLL_MS = 25;

export function parseSqliteUrl(url: string): SqliteUrl {
  const match = /^sqlite:(?:\/\/)?/i.exec(url);
  if (!match) throw new ConfigError(`not a sqlite URL: ${redactUrl(url)}`);
  const rest = url.slice(match[0].length);
  const queryAt = rest.indexOf("?");
  const path = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = new URLSearchParams(queryAt === -1 ? "" : rest.slice(queryAt + 1));
  if (path === "") {
    const examples = "sqlite://wqueue.db or sqlite:///abs/path.db";
    throw new ConfigError(`broker ${redactUrl(url)}: no database file; use e.g. ${examples}`);
  }
  return {
    path: resolve(path),
    visibilityMs: positiveParam(query, "visibility", DEFAULT_VISIBILITY_MS),
    pollMs: positiveParam(query, "poll", DEFAULT_POLL_MS),
  };
}

/** Zero is refused too: a zero visibility would hand every message to every consumer at once. */
function positiveParam(query: URLSearchParams, name: string, fallback: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`broker URL parameter ${name}=${raw} must be a whole number of milliseconds >= 1`);
  }
  return value;
}
