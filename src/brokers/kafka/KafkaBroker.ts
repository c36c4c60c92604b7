import { filterQueues, regExpOf } from "../queue-pattern.js";
import { type Admin, type Kafka, Partitioners, type Producer } from "kafkajs";
import { BrokerUnreachableError } from "../../errors.js";
import type { Broker, BrokerFeatures, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { browseTopic } from "./browse-topic.js";
import { KafkaConsumer, type KafkaConsumerContext } from "./KafkaConsumer.js";
import { createKafkaClient, describeKafkaError, type KafkaEventLog } from "./kafka-client.js";
import { toKafkaMessage } from "./kafka-headers.js";
import type { KafkaUrl } from "./kafka-url.js";
import { checkTopicName, TopicRegistry } from "./topics.js";

/**
 * Apache Kafka (`kafka://host:port[,host:port]?group=NAME&partitions=N&rebalanceTimeout=MS`), through kafkajs.
 *
 * A queue is a topic, created on first use with `partitions` partitions. Each consumer is a member
 * of the URL's consumer group, so workers sharing the group split a topic's partitions. Delivery
 * is at-least-once: an offset is committed only below every unfinished message of its partition.
 * nack({ delayMs }) keeps the record in this process and hands it out again after the delay
 * (retries with backoff in the worker, not a retry topic), so a delay does not survive a crash:
 * the record then comes back at once, with its attempt counted. Headers and keys are Kafka's own.
 */
export class KafkaBroker implements Broker {
  readonly kind = "kafka";
  readonly url: string;
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: false,
    durable: true,
    ordered: true,
    partitioned: true,
  };
  readonly client: Kafka;
  readonly topics: TopicRegistry;
  readonly #lifecycle: BrokerLifecycle<KafkaConsumer>;
  readonly #consumerContext: KafkaConsumerContext;
  #connected: Promise<void> | undefined;
  #admin: Promise<Admin> | undefined;
  #producer: Promise<Producer> | undefined;

  constructor(
    readonly config: KafkaUrl,
    readonly log: KafkaEventLog = () => {},
  ) {
    this.url = config.shown;
    this.client = createKafkaClient(config, log);
    this.topics = new TopicRegistry(() => this.admin(), config.partitions);
    this.#lifecycle = new BrokerLifecycle("Kafka", this.url);
    this.#consumerContext = {
      config,
      url: this.url,
      log,
      client: this.client,
      topics: this.topics,
      admin: () => this.admin(),
      publish: (queue, messages) => this.publish(queue, messages),
      closed: (consumer) => this.#lifecycle.forget(consumer),
    };
  }

  /**
   * Checks that a seed broker answers, trying once: BrokerUnreachableError within a few seconds,
   * also when the port is held by a server that is not Kafka.
   */
  connect(): Promise<void> {
    this.#connected ??= (async () => {
      // The cluster's retries come from the client, not from admin({ retry }): a client of its own.
      const probe = createKafkaClient(this.config, () => {}, true).admin();
      try {
        await probe.connect();
      } catch (error) {
        this.#connected = undefined; // the next connect() tries again
        const detail = describeKafkaError(error);
        // Something answered the TCP connect, then hung up or stayed silent: most likely not Kafka.
        const hint = /timed out|closed connection/i.test(detail) ? " (is a Kafka broker listening there?)" : "";
        throw new BrokerUnreachableError(`cannot reach Kafka at ${this.url}: ${detail}${hint}`);
      } finally {
        await probe.disconnect().catch(() => {});
      }
    })();
    return this.#connected;
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    checkTopicName(queue, this.url); // the dead-letter topic may live on another broker: checked on publish
    return this.#lifecycle.track(new KafkaConsumer(this.#consumerContext, queue, deadLetterQueue, options.maxInFlight, options.onePerPartition));
  }

  /** Resolves once every partition leader and its in-sync replicas have the messages (acks=all). */
  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    checkTopicName(queue, this.url);
    if (messages.length === 0) return;
    await this.topics.ensure(queue);
    const producer = await this.#connectedProducer();
    const now = Date.now();
    await producer.send({ topic: queue, acks: -1, messages: messages.map((message) => toKafkaMessage(message, now)) });
  }

  /** Records of the queue's topic this URL's group has not consumed yet, left unconsumed (browse-topic.ts). */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    this.#lifecycle.assertOpen();
    checkTopicName(queue, this.url);
    return browseTopic({ client: this.client, group: this.config.group, admin: () => this.admin() }, queue, limit);
  }

  /**
   * Topics matching `pattern` (../queue-pattern.ts, as a RegExp), from one metadata request: kafkajs
   * can subscribe by RegExp, but only resolves it when the consumer starts, so the worker lists
   * topics itself and opens a consumer per new one. Kafka's internal topics (`__...`) never match.
   */
  async listQueues(pattern: string): Promise<string[]> {
    this.#lifecycle.assertOpen();
    const topic = regExpOf(pattern);
    const topics = await (await this.admin()).listTopics();
    return filterQueues(pattern, topics.filter((name) => !name.startsWith("__") && topic.test(name)));
  }

  /** The shared admin client (topic creation, committed offsets), connected on first use. */
  admin(): Promise<Admin> {
    this.#admin ??= this.#connectClient(this.client.admin(), () => {
      this.#admin = undefined;
    });
    return this.#admin;
  }

  /** Idempotent: closes every consumer (commits, leaves the group), then the producer and admin clients. */
  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      const clients = await Promise.allSettled([this.#producer, this.#admin]);
      for (const client of clients) {
        if (client.status === "fulfilled") await client.value?.disconnect().catch(() => {});
      }
    });
  }

  #connectedProducer(): Promise<Producer> {
    this.#producer ??= this.#connectClient(
      // Java's murmur2 partitioner: a key lands on the same partition as from a Java producer.
      this.client.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false }),
      () => {
        this.#producer = undefined;
      },
    );
    return this.#producer;
  }

  /** Connects a kafkajs client; a failed connect is forgotten so the next use tries again. */
  async #connectClient<T extends { connect(): Promise<void> }>(client: T, forget: () => void): Promise<T> {
    try {
      await client.connect();
      return client;
    } catch (error) {
      forget();
      throw new BrokerUnreachableError(`cannot reach Kafka at ${this.url}: ${describeKafkaError(error)}`);
    }
  }
}
