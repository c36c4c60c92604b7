/**
 * Delivery counts that survive a consumer, for logs that do not count deliveries (Kafka, Kinesis).
 * `Delivery.attempt` must count every delivery, including those of a consumer that closed or died
 * with the message unsettled. So each commit (Kafka: the metadata string beside the committed
 * offset; Kinesis: the text beside the checkpoint) lists the records at or after the commit point
 * that were handed out and are not finished yet, with how often: `wq1:0.1,3.2` = the record at the
 * commit point delivered once, the third after it twice. Positions count records, so they mean the
 * same to the next owner, which reads them when it takes the partition or shard over.
 *
 * Bounded by Kafka's `offset.metadata.max.bytes` (4096 by default): the lowest positions are kept,
 * since the lowest unfinished record is the one a crash loop redelivers first.
 */
const PREFIX = "wq1:";
export const MAX_METADATA_CHARS = 3000;

/** Builds the metadata for a commit at `base` from (offset, deliveries) pairs in offset order. */
export function encodeDeliveries(base: number, entries: Iterable<readonly [number, number]>): string | null {
  let text = PREFIX;
  for (const [offset, deliveries] of entries) {
    const entry = `${text.length > PREFIX.length ? "," : ""}${offset - base}.${deliveries}`;
    if (text.length + entry.length > MAX_METADATA_CHARS) break;
    text += entry;
  }
  return text.length > PREFIX.length ? text : null;
}

/** Reads metadata written by encodeDeliveries; anything else (another client's text) means none. */
export function decodeDeliveries(base: number, metadata: string | null | undefined): Map<number, number> {
  const counts = new Map<number, number>();
  if (!metadata?.startsWith(PREFIX)) return counts;
  for (const entry of metadata.slice(PREFIX.length).split(",")) {
    const [delta, deliveries] = entry.split(".").map(Number);
    if (Number.isInteger(delta) && Number.isInteger(deliveries) && (delta as number) >= 0 && (deliveries as number) > 0) {
      counts.set(base + (delta as number), deliveries as number);
    }
  }
  return counts;
}
