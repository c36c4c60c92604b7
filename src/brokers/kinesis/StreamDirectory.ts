import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  ListShardsCommand,
  type ListShardsCommandInput,
  type Shard,
} from "@aws-sdk/client-kinesis";
import { ConfigError } from "../../errors.js";
import { isThrottled } from "../aws/sdk-errors.js";
import { isStreamBusy, isStreamMissing } from "./kinesis-client.js";

/** How often a stream that is being created or resharded is asked whether it is ACTIVE yet. */
const ACTIVE_POLL_MS = 100;
const ACTIVE_WAIT_MS = 120_000;

/**
 * wqueue queue name -> Kinesis stream of the same name, created on first use with the URL's shard
 * count and cached per name. An existing stream is used as it is (its shards, retention and
 * encryption are the owner's). forget() drops the cache entry, for a stream deleted meanwhile.
 */
export class StreamDirectory {
  readonly #ready = new Map<string, Promise<void>>();

  constructor(
    readonly client: KinesisClient,
    readonly shardCount: number,
  ) {}

  /** Resolves once the stream exists and takes writes (ACTIVE or UPDATING); creates it if missing. */
  ensure(stream: string): Promise<void> {
    let ready = this.#ready.get(stream);
    if (ready === undefined) {
      ready = this.#ensure(stream);
      this.#ready.set(stream, ready);
      ready.catch(() => {
        if (this.#ready.get(stream) === ready) this.#ready.delete(stream);
      });
    }
    return ready;
  }

  forget(stream: string): void {
    this.#ready.delete(stream);
  }

  /** Every shard of the stream, open and closed (parents of a reshard still within retention). */
  async shards(stream: string): Promise<Shard[]> {
    const shards: Shard[] = [];
    let input: ListShardsCommandInput = { StreamName: stream };
    for (;;) {
      const page = await this.client.send(new ListShardsCommand(input));
      shards.push(...(page.Shards ?? []));
      if (page.NextToken === undefined) return shards;
      input = { NextToken: page.NextToken };
    }
  }

  async #ensure(stream: string): Promise<void> {
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(stream)) {
      throw new ConfigError(`"${stream}" cannot be a Kinesis stream name: 1-128 of A-Z a-z 0-9 _ . -`);
    }
    const deadline = Date.now() + ACTIVE_WAIT_MS;
    for (;;) {
      const status = await this.#status(stream);
      if (status === "ACTIVE" || status === "UPDATING") return;
      if (status === undefined) await this.#create(stream);
      else if (status === "DELETING") {
        // Deleted by somebody: wait until it is gone, then create it again.
      }
      if (Date.now() > deadline) throw new Error(`Kinesis stream ${stream} is still ${status ?? "missing"} after ${ACTIVE_WAIT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, ACTIVE_POLL_MS));
    }
  }

  async #status(stream: string): Promise<string | undefined> {
    try {
      const answer = await this.client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
      return answer.StreamDescriptionSummary?.StreamStatus;
    } catch (error) {
      if (isStreamMissing(error)) return undefined;
      throw error;
    }
  }

  async #create(stream: string): Promise<void> {
    try {
      await this.client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: this.shardCount }));
    } catch (error) {
      // Another worker is creating it at the same moment, or too many streams are being created at
      // once (LimitExceededException: AWS allows five at a time): ask again on the next round.
      if (!isStreamBusy(error) && !isThrottled(error)) throw error;
    }
  }
}
