import type { Redis } from "ioredis";
import { filterQueues, redisGlobOf } from "../queue-pattern.js";
import { delayedKey } from "./delayed-set.js";

/** Keys per SCAN step: large enough that a big keyspace takes few round trips. */
const SCAN_COUNT = 1000;
/** Every key wqueue keeps beside a queue has this in its name (`<queue>:wqueue:processing:<id>`, ...). */
const BOOKKEEPING = ":wqueue:";

/**
 * The queues of one Redis mode that match `pattern` (see ../queue-pattern.ts): the keys of the
 * mode's type (`list` for the list and reliable modes, `stream` for Streams) found by `SCAN MATCH
 * <glob> TYPE <type>`, leaving out wqueue's own keys, plus the queues whose only messages are
 * delayed (their `<queue>:wqueue:delayed` set exists before the queue's key does). A SCAN walks the
 * whole keyspace in steps of SCAN_COUNT, so one listing costs O(keys in the database), not
 * O(matches): that is why discovery runs every few seconds, not per receive. Needs Redis >= 6.
 */
export async function listRedisQueues(client: Redis, pattern: string, type: "list" | "stream"): Promise<string[]> {
  const found: string[] = [];
  for (const key of await scan(client, redisGlobOf(pattern), type)) if (!key.includes(BOOKKEEPING)) found.push(key);
  const suffix = delayedKey("");
  for (const key of await scan(client, redisGlobOf(pattern, suffix), "zset")) found.push(key.slice(0, -suffix.length));
  return filterQueues(pattern, found);
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
