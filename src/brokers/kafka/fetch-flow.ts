import type { PartitionState } from "./partition-state.js";

/** Fetched records held per consumer when the caller gives no maxInFlight. */
export const DEFAULT_BUFFER = 500;
/** The most one fetch brings: kafkajs's maxBytes (1 MB per partition, at most this in all). */
export const FETCH_MAX_BYTES = 4 * 1024 * 1024;
/**
 * Fetching pauses only once the buffer also holds this many bytes: two fetches' worth. Kafka
 * fetches by the megabyte (1 MB per partition, as Java's client does), so one fetch of small
 * records is thousands of them, and pausing at exactly maxInFlight would stall the consumer on
 * every refill: a paused kafkajs consumer looks again only after its 500 ms fetch wait, and drops
 * (to fetch again) what arrives for a partition paused meanwhile. Resuming at half leaves a
 * fetch's worth of runway, so the next one arrives before the buffer runs dry.
 */
export const MIN_BUFFER_BYTES = 2 * FETCH_MAX_BYTES;

/**
 * Flow control of one consumer's fetch buffer. When the records waiting to be handed out reach
 * maxInFlight (and MIN_BUFFER_BYTES), the partitions that have some are paused, and all are
 * resumed once half are gone; one fetch may overshoot by up to FETCH_MAX_BYTES. Partitions with
 * nothing buffered keep fetching, so one busy partition does not starve the others.
 */
export class FetchFlow {
  readonly #paused = new Set<number>();
  readonly limit: number;

  constructor(
    maxInFlight: number | undefined,
    readonly fetcher: { pause(partitions: number[]): void; resume(partitions: number[]): void },
  ) {
    this.limit = Math.max(1, Math.floor(maxInFlight ?? DEFAULT_BUFFER));
  }

  /** After a fetch was buffered. */
  fetched(states: ReadonlyMap<number, PartitionState>): void {
    const { records, bytes } = buffered(states);
    if (records < this.limit || bytes < MIN_BUFFER_BYTES) return;
    const full: number[] = [];
    for (const state of states.values()) {
      if (state.buffered > 0 && !this.#paused.has(state.partition)) full.push(state.partition);
    }
    for (const partition of full) this.#paused.add(partition);
    if (full.length > 0) this.fetcher.pause(full);
  }

  /** After records were handed out. */
  taken(states: ReadonlyMap<number, PartitionState>): void {
    if (this.#paused.size === 0) return;
    const { records, bytes } = buffered(states);
    if (records > this.limit / 2 && bytes > MIN_BUFFER_BYTES / 2) return;
    this.fetcher.resume([...this.#paused]);
    this.#paused.clear();
  }

  /** The partition left this consumer: a later owner of it starts unpaused. */
  revoked(partition: number): void {
    if (this.#paused.delete(partition)) this.fetcher.resume([partition]);
  }

  /** The kafkajs consumer restarted: its pauses are gone with it. */
  reset(): void {
    this.#paused.clear();
  }
}

function buffered(states: ReadonlyMap<number, PartitionState>): { records: number; bytes: number } {
  let records = 0;
  let bytes = 0;
  for (const state of states.values()) {
    records += state.buffered;
    bytes += state.bufferedBytes;
  }
  return { records, bytes };
}
