import { randomUUID } from "node:crypto";
import type { Admin, Kafka, KafkaMessage } from "kafkajs";
import type { BrowsedMessage } from "../contract.js";
import { fromKafkaHeaders } from "./kafka-headers.js";

/** How long a browse may take before it returns what it has (records it cannot reach: compacted, aborted). */
const BROWSE_DEADLINE_MS = 15_000;

export interface BrowseSource {
  client: Kafka;
  /** The group whose committed offsets say where the unread records start. */
  group: string;
  admin(): Promise<Admin>;
}

/**
 * Up to `limit` records of `topic` that `group` has not consumed yet: each partition from the
 * group's committed offset (the start of the log without one) to its end as it is now, partition by
 * partition in offset order, read without touching the group. For `wqueue dead-letters list`.
 *
 * kafkajs reads only as a group member, so a throwaway group reads them (no commit, deleted after):
 * the real group's offsets and members are left alone.
 */
export async function browseTopic(source: BrowseSource, topic: string, limit: number): Promise<BrowsedMessage[]> {
  const admin = await source.admin();
  if (limit <= 0 || !(await admin.listTopics()).includes(topic)) return [];
  const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId: source.group, topics: [topic] })]);
  const from = new Map(committed?.partitions.map((p) => [p.partition, Number(p.offset)]));
  /** Per partition with unread records: [first, end). */
  const ranges = new Map<number, { first: number; end: number }>();
  for (const { partition, low, high } of ends) {
    const start = Math.max(Number(low), from.get(partition) ?? -1);
    if (start < Number(high)) ranges.set(partition, { first: start, end: Number(high) });
  }
  if (ranges.size === 0) return [];

  const found = new Map<number, KafkaMessage[]>([...ranges.keys()].map((partition) => [partition, []]));
  const open = new Set(ranges.keys());
  const groupId = `wqueue-browse-${randomUUID()}`;
  const reader = source.client.consumer({ groupId, maxWaitTimeInMs: 200, allowAutoTopicCreation: false });
  let total = 0;
  try {
    await reader.connect();
    await reader.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(resolve, BROWSE_DEADLINE_MS);
      const done = () => {
        clearTimeout(deadline);
        resolve();
      };
      reader.on(reader.events.CRASH, ({ payload }) => {
        clearTimeout(deadline);
        reject(payload.error);
      });
      reader
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const range = ranges.get(batch.partition);
            if (range === undefined || !open.has(batch.partition)) return;
            for (const message of batch.messages) {
              const offset = Number(message.offset);
              if (offset < range.first || offset >= range.end) continue;
              (found.get(batch.partition) as KafkaMessage[]).push(message);
              total += 1;
            }
            const last = Number(batch.messages[batch.messages.length - 1]?.offset ?? -1);
            if (last >= range.end - 1) open.delete(batch.partition);
            if (open.size === 0 || total >= limit) done();
          },
        })
        .then(() => {
          // Start each partition at its first unread record rather than at the log's start.
          for (const [partition, { first }] of ranges) reader.seek({ topic, partition, offset: String(first) });
        }, reject);
    });
  } finally {
    await reader.disconnect().catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
  }
  const out: BrowsedMessage[] = [];
  for (const [partition, messages] of [...found].sort(([a], [b]) => a - b)) {
    for (const message of messages) {
      out.push({
        id: `${partition}:${message.offset}`,
        body: message.value ?? new Uint8Array(0),
        headers: fromKafkaHeaders(message.headers),
        key: message.key?.toString("utf8"),
      });
    }
  }
  return out.slice(0, limit);
}
