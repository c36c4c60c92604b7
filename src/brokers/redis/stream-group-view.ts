import type { Redis } from "ioredis";
import type { RawEntry } from "./stream-scripts.js";

/** What XINFO GROUPS says of one group; undefined when the stream or the group does not exist. */
async function groupInfo(client: Redis, queue: string, group: string): Promise<Map<string, unknown> | undefined> {
  const groups = (await client.xinfo("GROUPS", queue).catch(() => [])) as unknown[][];
  for (const flat of groups) {
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < flat.length; i += 2) info.set(String(flat[i]), flat[i + 1]);
    if (info.get("name") === group) return info;
  }
  return undefined;
}

/**
 * Entries the group has not read yet: its `lag` (Redis 7), or the stream's length when there is no
 * group yet or Redis cannot tell the lag (after deletions inside the unread range).
 */
export async function unreadCount(client: Redis, queue: string, group: string): Promise<number> {
  const lag = (await groupInfo(client, queue, group))?.get("lag");
  return typeof lag === "number" ? lag : client.xlen(queue);
}

/**
 * Up to `limit` entries the group has not acked, oldest first: the pending ones (delivered, not
 * settled), then the ones after its last-delivered id. A stream keeps acked entries (other groups
 * may read it), so XRANGE alone would list handled messages as waiting; without the group, every
 * entry is waiting.
 */
export async function unackedEntries(client: Redis, queue: string, group: string, limit: number): Promise<RawEntry[]> {
  const info = await groupInfo(client, queue, group);
  if (info === undefined) return client.xrangeBuffer(queue, "-", "+", "COUNT", limit);
  const pending = (await client.xpending(queue, group, "-", "+", limit)) as [string, string, number, number][];
  const pipeline = client.pipeline();
  for (const [id] of pending) pipeline.xrangeBuffer(queue, id, id);
  pipeline.xrangeBuffer(queue, `(${String(info.get("last-delivered-id"))}`, "+", "COUNT", limit);
  const entries: RawEntry[] = [];
  for (const [error, reply] of (await pipeline.exec()) ?? []) {
    if (error) throw error;
    entries.push(...(reply as RawEntry[])); // a pending entry trimmed away meanwhile reads as none
  }
  return entries.slice(0, limit);
}
