import { createHash } from "node:crypto";
import { ConfigError } from "../../errors.js";

/**
 * How wqueue's queues map onto JetStream:
 *
 * - queue `orders.created` -> subject `<subjectPrefix>orders.created` (no prefix by default), so a
 *   plain `nats pub orders.created '{...}'` lands in the queue once its stream exists;
 * - subject -> the stream that already captures it (one made by ops, `?stream=`), else a stream of
 *   its own: `WQ_` + the subject with every character a stream name may not hold (`.`, `*`, `>`,
 *   spaces, ...) turned into `_`: `WQ_orders_created`, work-queue retention, file storage;
 * - its durable pull consumer: `?durable=` (`wqueue`) in a stream of its own; in a stream shared by
 *   several queues, `<durable>_<sanitized subject>`, one per queue (work-queue streams allow only
 *   one consumer per subject, and consumer names are unique per stream);
 * - the dead-letter queue `orders.created.dead` is a queue like the others (its own stream).
 *
 * Two queues whose names differ only in characters that sanitize alike (`a.b`, `a_b`) would map
 * to one stream name: the second one fails with a clear error (./StreamResolver.ts) rather than
 * sharing a stream unknowingly; `?stream=` puts such queues in one stream on purpose.
 */
export const STREAM_PREFIX = "WQ_";
/** Long names end with a hash instead, well under JetStream's 255-character limit for stream names. */
const MAX_NAME = 120;

/** The subject of a queue; a ConfigError for a queue name that is no valid literal subject. */
export function queueSubject(subjectPrefix: string, queue: string): string {
  const subject = subjectPrefix + queue;
  if (!validSubjectPart(subject) || subject.endsWith(".")) {
    throw new ConfigError(
      `queue "${queue}" gives the NATS subject "${subject}", which is not a valid literal subject (no spaces, no * or > tokens, no empty tokens)`,
    );
  }
  return subject;
}

/** The stream wqueue creates for a subject that no stream captures yet. */
export function streamNameFor(subject: string): string {
  return STREAM_PREFIX + sanitize(subject);
}

/** The durable consumer of a queue in `stream` (see the header). */
export function consumerNameFor(durable: string, stream: string, subject: string): string {
  return stream === streamNameFor(subject) ? durable : `${durable}_${sanitize(subject)}`;
}

/** Stream and consumer names: printable, no `.`, `*`, `>`, path separators or whitespace. */
export function validName(name: string): boolean {
  return /^[^\s.*>/\\]+$/.test(name) && name.length <= 200;
}

/** A subject or subject prefix: tokens of printable characters; `*` and `>` only inside a token. */
export function validSubjectPart(part: string): boolean {
  if (part === "" || /\s/.test(part)) return false;
  const tokens = part.split(".");
  const last = tokens.length - 1;
  // A prefix may end with "." (its last token is then empty); no other token may be empty.
  return tokens.every((token, index) => (token !== "" || index === last) && token !== "*" && token !== ">");
}

/** Whether a stream's subject pattern (with `*` and `>` wildcards) captures a literal subject. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const want = pattern.split(".");
  const have = subject.split(".");
  for (let i = 0; i < want.length; i += 1) {
    const token = want[i];
    if (token === ">") return have.length > i;
    if (i >= have.length || (token !== "*" && token !== have[i])) return false;
  }
  return want.length === have.length;
}

function sanitize(subject: string): string {
  const name = subject.replace(/[^A-Za-z0-9_-]/g, "_");
  if (name.length <= MAX_NAME) return name;
  const hash = createHash("sha256").update(subject).digest("hex").slice(0, 12);
  return `${name.slice(0, MAX_NAME - 13)}_${hash}`;
}
