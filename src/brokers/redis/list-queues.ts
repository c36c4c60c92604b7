import type { Cluster, Redis } from "ioredis";
import { filterQueues, redisGlobOf } from "../queue-pattern.js";

/** Keys per SCAN step: a step blocks Redis for its duration, so steps stay small. */
const SCAN_COUNT = 1000;
/** Every key wqueue keeps beside a queue has this in its name (`<queue>:wqueue:processing:<id>`, ...). */
const BOOKKEEPING = ":wqueue:";
/** The delayed set of a queue: `<queue>:wqueue:delayed`, `{<queue>}:wqueue:delayed` on a Cluster (./delayed-set.ts). */
const DELAYED = ":wqueue:delayed";

/**
 * The queues of one Redis mode that match `pattern` (see ../queue-pattern.ts): the keys of the
 * mode's type (`list` for the list and reliable modes, `stream` for Streams) found by `SCAN MATCH
 * <glob> TYPE <type>`, leaving out wqueue's own keys, plus the queues whose only messages are
 * delayed (their delayed set exists before the queue's key does). A SCAN walks the whole keyspace
 * in steps of SCAN_COUNT, so one listing costs O(keys in the database), not O(matches): that is why
 * discovery runs every few seconds, not per receive (`npm run bench:pattern-listing`). On a Cluster
 * every master is scanned (a SCAN sees one node's keys). Needs Redis >= 6.
 */
export async function listRedisQueues(client: Redis, pattern: string, type: "list" | "stream"): Promise<string[]> {
  const cluster = client.isCluster;
  const found: string[] = [];
  for (const key of await scanAll(client, redisGlobOf(pattern), type)) if (!key.includes(BOOKKEEPING)) found.push(key);
  const delayedGlob = cluster ? `{${redisGlobOf(pattern)}}${DELAYED}` : redisGlobOf(pattern, DELAYED);
  for (const key of await scanAll(client, delayedGlob, "zset")) {
    const tagged = key.slice(0, -DELAYED.length);
    found.push(cluster ? tagged.slice(1, -1) : tagged);
  }
  return filterQueues(pattern, found);
}

async function scanAll(client: Redis, match: string, type: string): Promise<string[]> {
  const nodes = client.isCluster ? (client as unknown as Cluster).nodes("master") : [client];
  const keys: string[] = [];
  for (const node of nodes) keys.push(...(await scan(node, match, type)));
  return keys;
}

async function scan(client: Redis, match: string, type: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await client.scan(cursor, "MATCH", match, "COUNT", SCAN_COUNT, "TYPE", type);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys;
}
