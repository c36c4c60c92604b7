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
/** The longest range a reader accepts (a writer never claims more than a few thousand ahead). */
const MAX_RANGE = 65_536;

/** Builds the metadata for a commit at `base` from (offset, deliveries) pairs in offset order. */
export function encodeDeliveries(base: number, entries: Iterable<readonly [number, number]>): string | null {
  return encodeDeliveriesCounted(base, entries).text;
}

/**
 * encodeDeliveries, and how many of the first entries it holds (the rest did not fit). An entry
 * may stand for a run, `[first, count, last]`: every offset first..last with that count. Runs of
 * consecutive offsets with one count are written as one range, `first-last.count` (`wq1:0-499.1`:
 * 500 records delivered once), so a long write-ahead window stays small. Readers from before
 * ranges skip them (they count those records from 1 again): compatible both ways.
 */
export function encodeDeliveriesCounted(
  base: number,
  entries: Iterable<readonly [number, number, number?]>,
): { text: string | null; written: number } {
  let text = PREFIX;
  let written = 0;
  /** The run being built: positions first..last, all `count`, from `size` entries. */
  let first = -1;
  let last = -1;
  let count = 0;
  let size = 0;
  const flush = (): boolean => {
    if (size === 0) return true;
    const entry = `${text.length > PREFIX.length ? "," : ""}${first === last ? first : `${first}-${last}`}.${count}`;
    if (text.length + entry.length > MAX_METADATA_CHARS) return false;
    text += entry;
    written += size;
    return true;
  };
  for (const [offset, deliveries, lastOffset = offset] of entries) {
    if (size > 0 && offset - base === last + 1 && deliveries === count) {
      last = lastOffset - base;
      size += 1;
      continue;
    }
    if (!flush()) {
      size = 0;
      break;
    }
    first = offset - base;
    last = lastOffset - base;
    count = deliveries;
    size = 1;
  }
  flush();
  return { text: written > 0 ? text : null, written };
}

/** Reads metadata written by encodeDeliveries; anything else (another client's text) means none. */
export function decodeDeliveries(base: number, metadata: string | null | undefined): Map<number, number> {
  const counts = new Map<number, number>();
  if (!metadata?.startsWith(PREFIX)) return counts;
  for (const entry of metadata.slice(PREFIX.length).split(",")) {
    const [span = "", count = ""] = entry.split(".");
    const [first, last = first] = span.split("-").map(Number);
    const deliveries = Number(count);
    if (!(Number.isInteger(first) && Number.isInteger(last) && Number.isInteger(deliveries))) continue;
    if ((first as number) < 0 || (last as number) < (first as number) || (last as number) - (first as number) > MAX_RANGE || deliveries <= 0) continue;
    for (let delta = first as number; delta <= (last as number); delta += 1) counts.set(base + delta, deliveries);
  }
  return counts;
}
