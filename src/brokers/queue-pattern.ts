import { ConfigError } from "../errors.js";

/**
 * The one syntax of queue patterns (`app.listenEvents("tenant.*", handler)`), the same on every
 * broker that can list its queues. A queue name is read as segments separated by `.`:
 *
 * - `*` as a whole segment matches exactly one segment (one or more characters, no `.`):
 *   `tenant.*` matches `tenant.acme`, not `tenant.acme.eu` nor `tenant`;
 * - `>` as the last segment matches one or more segments: `tenant.>` matches `tenant.acme` and
 *   `tenant.acme.eu`;
 * - every other segment is literal. A `*` or `>` inside a segment (`tenant-*`), or a `>` that is not
 *   last, is a ConfigError: it would mean different things on different brokers.
 *
 * This is NATS's subject syntax, so a NATS pattern is passed as it is; Redis `SCAN MATCH` gets a glob
 * (`*` for each wildcard, which also spans dots: the keys found are then filtered here), Kafka a
 * RegExp, SQL a `LIKE` prefix, all filtered by `matchesQueuePattern` in the end.
 *
 * Neither names with wildcards of their own (a memory store holds any name it was asked about) nor
 * dead-letter queues are ever matched: a name whose last segment is `dead` (`<queue>.dead`, the
 * default dead-letter queue of every adapter) is left out, so `tenant.>` does not consume
 * `tenant.acme.dead`.
 */
const ONE = "*";
const REST = ">";
const DEAD_SEGMENT = "dead";

/** Whether `queue` is a pattern: one of its segments is a wildcard (checked by checkQueuePattern). */
export function isQueuePattern(queue: string): boolean {
  return queue.split(".").some((segment) => segment.includes(ONE) || segment.includes(REST));
}

/** Throws a ConfigError naming what is wrong with a pattern (see the syntax above). */
export function checkQueuePattern(pattern: string): void {
  const segments = pattern.split(".");
  segments.forEach((segment, index) => {
    if (segment === "") throw new ConfigError(`queue pattern "${pattern}": empty segment (two dots, or a dot at an end)`);
    if (segment === ONE) return;
    if (segment === REST) {
      if (index !== segments.length - 1) throw new ConfigError(`queue pattern "${pattern}": ">" matches the rest of the name, so it must be the last segment`);
      return;
    }
    if (segment.includes(ONE) || segment.includes(REST)) {
      throw new ConfigError(
        `queue pattern "${pattern}": "${segment}" mixes a wildcard with other characters; "*" and ">" stand for whole segments separated by "." (e.g. "tenant.*")`,
      );
    }
  });
}

/** Whether the concrete queue `name` is matched by `pattern` (dead-letter queues never are). */
export function matchesQueuePattern(pattern: string, name: string): boolean {
  const want = pattern.split(".");
  const have = name.split(".");
  if (have.at(-1) === DEAD_SEGMENT || isQueuePattern(name)) return false; // a pattern is no concrete queue
  for (let i = 0; i < want.length; i += 1) {
    const segment = want[i];
    if (segment === REST) return have.length > i && have.slice(i).every((part) => part !== "");
    if (i >= have.length || have[i] === "" || (segment !== ONE && segment !== have[i])) return false;
  }
  return want.length === have.length;
}

/** A Redis `SCAN MATCH` glob that finds at least every key the pattern matches (then filter). */
export function redisGlobOf(pattern: string, suffix = ""): string {
  const glob = pattern
    .split(".")
    .map((segment) => (segment === ONE || segment === REST ? "*" : segment.replace(/[*?[\]\\^]/g, (c) => `\\${c}`)))
    .join(".");
  return glob + suffix.replace(/[*?[\]\\^]/g, (c) => `\\${c}`);
}

/** A RegExp equivalent to the pattern (Kafka topic names), anchored at both ends. */
export function regExpOf(pattern: string): RegExp {
  const source = pattern
    .split(".")
    .map((segment) => (segment === ONE ? "[^.]+" : segment === REST ? ".+" : segment.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&")))
    .join("\\.");
  return new RegExp(`^${source}$`);
}

/** The literal start of the pattern, before its first wildcard (`tenant.` for `tenant.*`): a `LIKE` prefilter. */
export function literalPrefixOf(pattern: string): string {
  const segments = pattern.split(".");
  const wild = segments.findIndex((segment) => segment === ONE || segment === REST);
  return segments.slice(0, wild).map((segment) => `${segment}.`).join("");
}

/** The concrete queues among `names` that `pattern` matches, sorted and without repeats. */
export function filterQueues(pattern: string, names: Iterable<string>): string[] {
  return [...new Set(names)].filter((name) => matchesQueuePattern(pattern, name)).sort();
}
