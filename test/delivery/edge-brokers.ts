import { randomUUID } from "node:crypto";
import type { Broker, Delivery } from "../../src/brokers/contract.js";
import { createBroker } from "../../src/brokers/registry.js";
import { dropKinesisApp, requireKinesis } from "../brokers/kinesis-server.js";
import { requireNats } from "../brokers/nats-server.js";
import { dropSchema, schemaUrl, testSchema } from "../brokers/postgres-helpers.js";
import { requireSqs } from "../brokers/sqs-server.js";
import { tempDir } from "../cli/run-cli.js";
import { KAFKA_URL } from "../setup/ensure-kafka.js";
import { REDIS_URL } from "../setup/ensure-redis.js";

/**
 * Every at-least-once broker, each with a short lease (visibility, ack wait, claim idle time,
 * heartbeat, session or shard lease: `leaseMs`), for the tests that attack the delivery promise at
 * its edges: a message that kills its worker, a handler slower than the lease.
 */
export interface EdgeBroker {
  name: string;
  /** The broker's own lease in this URL: a handler 3x this long must still run once. */
  leaseMs: number;
  setup(): Promise<EdgeTarget>;
}

export interface EdgeTarget {
  url: string;
  queue: string;
  publish(bodies: unknown[]): Promise<void>;
  /** The dead letters of `queue` that arrived so far (taken off the dead-letter queue and acked). */
  takeDeadLetters(): Promise<Delivery[]>;
  /** What `queue` itself hands out now to a new consumer (taken and acked). */
  takeQueued(): Promise<Delivery[]>;
  /** Closes what setup() opened (tests of one file run concurrently: each closes its own). */
  close(): Promise<void>;
}

const LEASE_MS = 2000;
const SQS_LEASE_MS = 4000;

/** Call at the top level of a test file (the shared servers' fixtures register their hooks). */
export function edgeBrokers(prefix: string): EdgeBroker[] {
  const sqs = requireSqs({ prefix });
  const nats = requireNats(prefix);
  const kinesis = requireKinesis({ prefix });
  const name = () => `${prefix}.${randomUUID().slice(0, 8)}`;

  /** `deadUrl`: where the test reads dead letters, when that must not join the worker's group. */
  async function viaAdapter(url: string, queue: string, deadUrl = url, cleanups: (() => Promise<void>)[] = []): Promise<EdgeTarget> {
    const broker = await createBroker(url);
    await broker.connect();
    cleanups.push(() => broker.close());
    const deadBroker = deadUrl === url ? broker : await createBroker(deadUrl);
    if (deadBroker !== broker) {
      await deadBroker.connect();
      cleanups.push(() => deadBroker.close());
    }
    return {
      url,
      queue,
      publish: (bodies) => broker.publish(queue, bodies.map((body) => ({ body: Buffer.from(JSON.stringify(body)) }))),
      takeDeadLetters: takeWhatIsThere(deadBroker, `${queue}.dead`),
      takeQueued: takeWhatIsThere(broker, queue),
      close: async () => {
        await Promise.allSettled(cleanups.map((cleanup) => cleanup()));
      },
    };
  }

  // Not mqtt: its workers need a client id each (two with one id take the session from each other)
  // and it has no lease; its poison and kill cases are in test/brokers/mqtt.test.ts.
  return [
    { name: "sqlite", leaseMs: LEASE_MS, setup: () => viaAdapter(`sqlite://${tempDir()}/q.db?visibility=${LEASE_MS}&poll=20`, name()) },
    {
      name: "postgres",
      leaseMs: LEASE_MS,
      setup: () => {
        const schema = testSchema(`wqueue_${prefix}`);
        return viaAdapter(schemaUrl(schema, `lease=${LEASE_MS}`), name(), undefined, [() => dropSchema(schema).then(() => {})]);
      },
    },
    { name: "redis reliable", leaseMs: LEASE_MS, setup: () => viaAdapter(`${REDIS_URL}?heartbeatTtl=${LEASE_MS}`, name()) },
    { name: "redis stream", leaseMs: LEASE_MS, setup: () => viaAdapter(`${REDIS_URL}?mode=stream&claimIdle=${LEASE_MS}`, name()) },
    { name: "amqp classic", leaseMs: LEASE_MS, setup: () => viaAdapter("amqp://guest:guest@127.0.0.1:5672", name()) },
    { name: "amqp quorum", leaseMs: LEASE_MS, setup: () => viaAdapter("amqp://guest:guest@127.0.0.1:5672?queueType=quorum", name()) },
    // The group's session timeout (10 s) is its lease: a dead member's partitions move after it.
    {
      name: "kafka",
      leaseMs: 10_000,
      setup: async () => {
        const group = name();
        return viaAdapter(`${KAFKA_URL}?group=${group}`, name(), `${KAFKA_URL}?group=${group}-dead-reader`);
      },
    },
    { name: "nats", leaseMs: LEASE_MS, setup: () => viaAdapter(`${nats.url}&ackWait=${LEASE_MS}`, name()) },
    // Twice the others: each extension is an HTTP call to a JVM server, and on a loaded 2-core
    // machine it outlasted the third of a 2 s lease the lease keeper leaves for the round trip
    // (a Node 24 CI run: the 3x-lease handler ran 3 times). Whole seconds: SQS counts in seconds.
    { name: "sqs", leaseMs: SQS_LEASE_MS, setup: () => viaAdapter(sqs.url(`&visibility=${SQS_LEASE_MS / 1000}`), sqs.queueName()) },
    {
      name: "kinesis",
      leaseMs: LEASE_MS,
      setup: async () => {
        const app = name().replace(".", "-");
        const url = kinesis.url(`app=${app}&checkpoints=${REDIS_URL}&lease=${LEASE_MS}&poll=50`);
        return viaAdapter(url, kinesis.streamName(), url, [() => dropKinesisApp(app)]);
      },
    },
  ];
}

/**
 * Takes what a queue holds now, acking it. A fixed wait alone would stop before a slow consumer
 * attached (a Kafka group join, a Kinesis lease pickup) and report an empty queue, a false "nothing
 * left": so it publishes a sentinel behind what is there and takes until the sentinel came (the
 * consumer is attached and reading), then whatever else comes within a short window (other
 * partitions; brokers without order). The sentinel is not returned.
 */
function takeWhatIsThere(broker: Broker, queue: string): () => Promise<Delivery[]> {
  let consumer: ReturnType<Broker["consumer"]> | undefined;
  return async () => {
    consumer ??= broker.consumer(queue, { maxInFlight: 100 });
    const sentinel = `wqueue-test-sentinel-${randomUUID()}`;
    await broker.publish(queue, [{ body: Buffer.from(JSON.stringify({ sentinel })) }]);
    const isSentinel = (delivery: Delivery) => Buffer.from(delivery.body).toString().includes(sentinel);
    const taken: Delivery[] = [];
    let seen = false;
    const attached = AbortSignal.timeout(90_000);
    while (!seen && !attached.aborted) {
      const batch = await consumer.receive(100, attached);
      for (const delivery of batch) await delivery.ack();
      seen = batch.some(isSentinel);
      taken.push(...batch);
    }
    if (!seen) throw new Error(`${queue}: the sentinel published behind its messages never came back`);
    // A receive waits while the queue is empty: cut short here, it returns [] promptly.
    const window = AbortSignal.timeout(1500);
    for (;;) {
      const batch = await consumer.receive(100, window);
      if (batch.length === 0) break;
      for (const delivery of batch) await delivery.ack();
      taken.push(...batch);
    }
    return taken.filter((delivery) => !isSentinel(delivery));
  };
}
