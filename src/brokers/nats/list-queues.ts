import { filterQueues } from "../queue-pattern.js";
import type { NatsConnection } from "./NatsConnection.js";

/** A subject with a `*` or `>` token: a stream capturing many subjects. */
const WILDCARD = /(^|\.)[*>](\.|$)/;

/**
 * The queues matching `pattern` (../queue-pattern.ts uses NATS's own wildcards, so the pattern is a
 * subject filter as it is): the streams whose subjects overlap `<subjectPrefix><pattern>` (one
 * STREAM.LIST call with that filter); of each, its literal subjects (a queue's stream of its own
 * exists, with or without messages), and for a stream capturing wildcards (one made by ops, or
 * `?stream=`), the subjects holding messages now (STREAM.INFO with subjects_filter).
 */
export async function listNatsQueues(connection: NatsConnection, subjectPrefix: string, pattern: string): Promise<string[]> {
  const { jsm } = await connection.clients();
  const filter = subjectPrefix + pattern;
  const subjects: string[] = [];
  for await (const stream of jsm.streams.list(filter)) {
    const configured = stream.config.subjects ?? [];
    subjects.push(...configured.filter((subject) => !WILDCARD.test(subject)));
    if (configured.some((subject) => WILDCARD.test(subject))) {
      const info = await jsm.streams.info(stream.config.name, { subjects_filter: filter });
      subjects.push(...Object.keys(info.state.subjects ?? {}));
    }
  }
  const queues = subjects.filter((subject) => subject.startsWith(subjectPrefix)).map((subject) => subject.slice(subjectPrefix.length));
  return filterQueues(pattern, queues);
}
