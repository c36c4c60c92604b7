import { type KinesisClient, ListStreamsCommand } from "@aws-sdk/client-kinesis";
import { BrokerUnreachableError } from "../../errors.js";
import { probeEndpoint } from "../aws/probe-endpoint.js";
import type { Broker, BrokerFeatures, BrokerLog, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { browseStream } from "./browse-stream.js";
import { createKinesisClient, isStreamMissing } from "./kinesis-client.js";
import type { KinesisUrl } from "./kinesis-url.js";
import { KinesisConsumer, type KinesisConsumerContext } from "./KinesisConsumer.js";
import type { LeaseStore } from "./leases/LeaseStore.js";
import { openLeaseStore } from "./leases/open-lease-store.js";
import { putRecords } from "./put-records.js";
import { toKinesisRecord } from "./record-codec.js";
import { StreamDirectory } from "./StreamDirectory.js";

/** close() waits this long for the checkpoint store to close. */
const STORE_CLOSE_WAIT_MS = 2000;

/**
 * Amazon Kinesis Data Streams, or a local server such as kinesis-local (`kinesis://`, options in
 * ./kinesis-url.ts), through the AWS SDK v3. A queue is a stream, created on first use.
 *
 * The workers of one app share a stream's shards through leases kept in the checkpoint store
 * (./ShardBalancer.ts, ./leases/); each reads its shards in order and checkpoints below the first
 * unfinished record (./ShardState.ts), so delivery is at least once: after a crash the next owner
 * reads again from the checkpoint. After a reshard a child shard is read once its parents are.
 * nack({ delayMs }) keeps the record in this process and hands it out again later (Kinesis has no
 * redelivery), so a delay does not survive a crash: the record then comes back at once, its attempt
 * counted (the checkpoint keeps delivery counts). Dead letters go to another stream.
 */
export class KinesisBroker implements Broker {
  readonly kind = "kinesis";
  readonly url: string;
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: false,
    durable: true,
    ordered: true,
    partitioned: true,
  };
  readonly client: KinesisClient;
  readonly streams: StreamDirectory;
  readonly #lifecycle: BrokerLifecycle<KinesisConsumer>;
  readonly #consumerContext: KinesisConsumerContext;
  #connected: Promise<void> | undefined;
  #store: Promise<LeaseStore> | undefined;

  constructor(
    readonly config: KinesisUrl,
    readonly log: BrokerLog,
  ) {
    this.url = config.url;
    this.client = createKinesisClient(config);
    this.streams = new StreamDirectory(this.client, config.shards);
    this.#lifecycle = new BrokerLifecycle(this.kind, this.url);
    this.#consumerContext = {
      config,
      url: this.url,
      log,
      client: this.client,
      streams: this.streams,
      leaseStore: () => this.leaseStore(),
      publish: (queue, messages) => this.publish(queue, messages),
      closed: (consumer) => this.#lifecycle.forget(consumer),
    };
  }

  /**
   * Checks the endpoint answers as Kinesis (ListStreams) and the checkpoint store answers too, each
   * with short timeouts: a worker whose store cannot be reached fails at start with one line
   * (BrokerUnreachableError) instead of retrying after `ready`. `push` checks the store as well.
   */
  connect(): Promise<void> {
    if (this.#lifecycle.closed) return Promise.reject(new Error(`kinesis broker ${this.url} is closed`));
    this.#connected ??= Promise.all([this.#probe(), this.#checkStore()]).then(() => undefined, (error: unknown) => {
      this.#connected = undefined;
      throw error;
    });
    return this.#connected;
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    return this.#lifecycle.track(new KinesisConsumer(this.#consumerContext, queue, deadLetterQueue, options.maxInFlight, options.onePerPartition));
  }

  /** Resolves once Kinesis stored every record (./put-records.ts), in order per key. */
  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    if (messages.length === 0) return;
    await this.streams.ensure(queue);
    const now = Date.now();
    const records = messages.map((message) => toKinesisRecord(message, now));
    try {
      await putRecords(this.client, queue, records);
    } catch (error) {
      if (!isStreamMissing(error)) throw error;
      this.streams.forget(queue); // deleted meanwhile: create it again, send again
      await this.streams.ensure(queue);
      await putRecords(this.client, queue, records);
    }
  }

  /** Records of `queue` this app has not finished, left where they are (./browse-stream.ts). */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    this.#lifecycle.assertOpen();
    return browseStream(this.client, this.streams, await this.leaseStore(), queue, limit);
  }

  /** The app's lease and checkpoint store, connected on first use and shared by the consumers. */
  leaseStore(): Promise<LeaseStore> {
    this.#store ??= (async () => {
      const store = await openLeaseStore(this.config.checkpoints, this.config.app, this.log);
      try {
        await store.connect();
        return store;
      } catch (error) {
        await store.close().catch(() => {});
        throw error;
      }
    })().catch((error: unknown) => {
      this.#store = undefined;
      throw error;
    });
    return this.#store;
  }

  /** Idempotent: closes every consumer (checkpoints written, leases released), then the clients. */
  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      const store = await this.#store?.catch(() => undefined);
      // Bounded: closing a Redis store that is reconnecting can wait forever for its QUIT.
      const closing = store?.close().catch(() => {});
      await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, STORE_CLOSE_WAIT_MS).unref())]);
      this.client.destroy();
    });
  }

  async #checkStore(): Promise<void> {
    try {
      await this.leaseStore();
    } catch (error) {
      if (!(error instanceof BrokerUnreachableError)) throw error;
      throw new BrokerUnreachableError(`kinesis ${this.url}: checkpoint store: ${error.message}`);
    }
  }

  #probe(): Promise<void> {
    const probe = createKinesisClient(this.config, { maxAttempts: 2 });
    return probeEndpoint(
      `kinesis ${this.url}`,
      (abortSignal) => probe.send(new ListStreamsCommand({ Limit: 1 }), { abortSignal }),
      () => probe.destroy(),
    );
  }
}
