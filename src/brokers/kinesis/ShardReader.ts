import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient } from "@aws-sdk/client-kinesis";
import { describeAwsError, isAbort, isTransient } from "../aws/sdk-errors.js";
import type { BrokerLog } from "../contract.js";
import { Wakeup } from "../wakeup.js";
import { isIteratorExpired, isStreamMissing } from "./kinesis-client.js";
import type { ShardState } from "./ShardState.js";

/** Longest pause after repeated throttling or failures. */
const MAX_BACKOFF_MS = 5000;
/** GetRecords returns at most this many records a call. */
const MAX_LIMIT = 10_000;

export interface ReaderOptions {
  /** Pause after a read that found nothing new. */
  pollMs: number;
  /** Records kept read ahead of the handlers; reading pauses above it. */
  bufferLimit: number;
  log: BrokerLog;
  /** New records are in the state. */
  onRecords(): void;
  /** The shard is closed (resharded) and was read to its end. */
  onEnd(): void;
  /** Reading failed for good (the stream was deleted, access denied): the lease should go. */
  onFailed(): void;
}

/**
 * The read loop of one leased shard: GetRecords from the checkpoint on, into the ShardState, while
 * it has room (flow control from the handlers' pace). Backs off on empty reads (pollMs), on
 * throughput errors and on failures (doubling up to 5 s). An iterator that expired (5 minutes
 * unused, e.g. while the buffer was full) is replaced from the last record read.
 */
export class ShardReader {
  readonly #stop = new AbortController();
  readonly #room = new Wakeup();
  #done: Promise<void> | undefined;

  constructor(
    readonly client: KinesisClient,
    readonly state: ShardState,
    readonly options: ReaderOptions,
  ) {}

  start(): void {
    this.#done ??= this.#run().catch((error) => {
      if (this.#stop.signal.aborted) return;
      this.options.log("error", `${this.#where()}: reader stopped: ${describeAwsError(error)}`);
      this.options.onFailed();
    });
  }

  /** The handlers took records: reading may go on. */
  room(): void {
    this.#room.notify();
  }

  /** Ends the loop (an in-flight GetRecords is aborted); resolves when it has ended. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#done;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let iterator: string | undefined = await this.#iterator(signal);
    let failures = 0;
    while (!signal.aborted && iterator !== undefined) {
      const room = this.options.bufferLimit - this.state.buffered;
      if (room <= 0) {
        await this.#room.wait(signal);
        continue;
      }
      try {
        const answer = await this.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: Math.min(MAX_LIMIT, room) }), {
          abortSignal: signal,
        });
        if (failures > 0) this.options.log("info", `${this.#where()}: reading again`);
        failures = 0;
        const records = answer.Records ?? [];
        if (records.length > 0) {
          this.state.add(records);
          this.options.onRecords();
        }
        iterator = answer.NextShardIterator;
        if (iterator === undefined) break;
        if (records.length === 0) await pause(this.options.pollMs, signal);
      } catch (error) {
        if (signal.aborted || isAbort(error)) return;
        if (isIteratorExpired(error)) {
          iterator = await this.#iterator(signal);
          continue;
        }
        if (isStreamMissing(error)) throw error;
        failures += 1;
        const level = isTransient(error) ? (failures === 1 ? "warn" : "debug") : "error";
        this.options.log(level, `${this.#where()}: GetRecords failed (${failures}x), retrying: ${describeAwsError(error)}`);
        await pause(Math.min(MAX_BACKOFF_MS, this.options.pollMs * 2 ** Math.min(failures, 8)) * (0.5 + Math.random() / 2), signal);
      }
    }
    if (!signal.aborted) {
      this.state.ended = true;
      this.options.onEnd();
    }
  }

  /** An iterator after the last record read (or the checkpoint), or at the shard's start. */
  async #iterator(signal: AbortSignal): Promise<string | undefined> {
    for (let failures = 0; !signal.aborted; ) {
      const after = this.state.resumeAfter;
      try {
        const answer = await this.client.send(
          new GetShardIteratorCommand({
            StreamName: this.state.stream,
            ShardId: this.state.shardId,
            ...(after === undefined
              ? { ShardIteratorType: "TRIM_HORIZON" }
              : { ShardIteratorType: "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber: after }),
          }),
          { abortSignal: signal },
        );
        return answer.ShardIterator;
      } catch (error) {
        if (signal.aborted || isAbort(error)) return undefined;
        if (!isTransient(error)) throw error;
        failures += 1;
        this.options.log(failures === 1 ? "warn" : "debug", `${this.#where()}: GetShardIterator failed, retrying: ${describeAwsError(error)}`);
        await pause(Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(failures, 6)), signal);
      }
    }
    return undefined;
  }

  #where(): string {
    return `kinesis stream ${this.state.stream} shard ${this.state.shardId}`;
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Wakeup().wait(signal, ms);
}
