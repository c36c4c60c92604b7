import { GetQueueAttributesCommand, ListQueuesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { probeEndpoint } from "../aws/probe-endpoint.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import type { Broker, BrokerFeatures, BrokerLog, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BatchCalls } from "./BatchCalls.js";
import { browseQueue } from "./browse-queue.js";
import { QueueDirectory } from "./QueueDirectory.js";
import { sqsQueueName } from "./queue-names.js";
import { SqsConsumer, type SqsConsumerContext } from "./SqsConsumer.js";
import { sendBatches } from "./send-batches.js";
import { createSqsClient, isQueueMissing } from "./sqs-client.js";
import type { SqsUrl } from "./sqs-url.js";

/**
 * Amazon SQS, or a local SQS server such as ElasticMQ (`sqs://`, options in ./sqs-url.ts), through
 * the AWS SDK v3. At least once: a received message stays hidden for the visibility timeout,
 * extended while its handler runs; ack deletes it; a consumer that closes makes its unsettled
 * messages visible at once, and one that dies (kill -9) loses nothing: they come back when the
 * timeout passes, their attempt counted by SQS's ApproximateReceiveCount.
 *
 * Queues are created on first use (./QueueDirectory.ts; names mapped by ./queue-names.ts), message
 * format in ./message-codec.ts, acks and visibility changes batched per turn (./BatchCalls.ts).
 *
 * Features: durable on AWS (ElasticMQ keeps messages in memory unless configured with its
 * persistence: a restart of the test server loses them); delays kept by SQS (durableDelay);
 * ordered false: standard queues promise no order. FIFO queues (`name.fifo`, or all queues with
 * `?fifo=true`, which reports ordered) keep order per message group, which is the message key.
 */
export class SqsBroker implements Broker {
  readonly kind = "sqs";
  readonly url: string;
  readonly features: BrokerFeatures;
  /** Publishes, acks, visibility changes and queue admin. */
  readonly client: SQSClient;
  /**
   * Long polls (ReceiveMessage) only, on sockets of their own without a bound: one per waiting
   * receive, so 100 idle queues hold 100 sockets and publishes and acks never queue behind them.
   */
  readonly receiver: SQSClient;
  readonly queues: QueueDirectory;
  readonly calls: BatchCalls;
  readonly #lifecycle: BrokerLifecycle<SqsConsumer>;
  readonly #consumerContext: SqsConsumerContext;
  #connected: Promise<void> | undefined;

  constructor(
    readonly config: SqsUrl,
    readonly log: BrokerLog,
  ) {
    this.url = config.url;
    // With fifo=true every queue keeps order per message key (messages without one share a group).
    const ordered = config.fifo;
    this.features = { delivery: "at-least-once", headers: true, durableDelay: true, durable: true, ordered };
    this.client = createSqsClient(config);
    this.receiver = createSqsClient(config, { maxSockets: Number.POSITIVE_INFINITY });
    this.queues = new QueueDirectory(this.client, config.redrive, config.fifo);
    this.calls = new BatchCalls(this.client);
    this.#lifecycle = new BrokerLifecycle(this.kind, this.url);
    const { url, receiver, queues, calls } = this;
    this.#consumerContext = {
      url,
      config,
      receiver,
      queues,
      calls,
      log,
      publish: (queue, messages) => this.publish(queue, messages),
      closed: (consumer) => this.#lifecycle.forget(consumer),
    };
  }

  /** Checks the endpoint answers as SQS (ListQueues), with short timeouts and one retry. */
  async connect(): Promise<void> {
    this.#lifecycle.assertOpen();
    this.#connected ??= this.#probe().catch((error: unknown) => {
      this.#connected = undefined;
      throw error;
    });
    return this.#connected;
  }

  /**
   * Throws ConfigError at once for a queue name SQS cannot have. `maxInFlight` is not needed: SQS
   * is pulled, and a receive never asks for more than its `max`.
   */
  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    sqsQueueName(queue, this.config.fifo);
    sqsQueueName(deadLetterQueue, this.config.fifo);
    return this.#lifecycle.track(new SqsConsumer(this.#consumerContext, queue, deadLetterQueue));
  }

  /** Resolves once SQS stored every message (SendMessageBatch, in order: ./send-batches.ts). */
  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    if (messages.length === 0) return;
    try {
      await sendBatches(this.client, queue, await this.queues.info(queue), messages);
    } catch (error) {
      if (!isQueueMissing(error)) throw error;
      // The cached queue is gone (deleted, a local server restarted): create it again, send again.
      this.queues.forget(queue);
      await sendBatches(this.client, queue, await this.queues.info(queue), messages);
    }
  }

  /** Looks at up to `limit` messages and makes them visible again at once (./browse-queue.ts: costs a receive count each). */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    return browseQueue(this.client, this.calls, await this.queues.info(queue), limit);
  }

  /** SQS's ApproximateNumberOfMessages: visible messages, not those in flight or delayed. */
  async backlog(queue: string): Promise<number> {
    const { url } = await this.queues.info(queue);
    const command = new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages"] });
    const answer = await this.client.send(command);
    return Number(answer.Attributes?.ApproximateNumberOfMessages ?? 0);
  }

  /** Idempotent: closes every consumer (their unsettled messages visible again), sends pending acks, ends the client. */
  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      await this.calls.flush();
      this.client.destroy();
      this.receiver.destroy();
    });
  }

  #probe(): Promise<void> {
    const probe = createSqsClient(this.config, { maxAttempts: 2, connectionTimeoutMs: 2000 });
    return probeEndpoint(
      `sqs ${this.url}`,
      (abortSignal) => probe.send(new ListQueuesCommand({ MaxResults: 1 }), { abortSignal }),
      () => probe.destroy(),
    );
  }
}
