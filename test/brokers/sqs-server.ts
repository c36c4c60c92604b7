import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { DeleteQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll } from "vitest";
import type { Broker } from "../../src/brokers/contract.js";
import { sqsQueueName } from "../../src/brokers/sqs/queue-names.js";
import { ELASTICMQ_PORT, ensureElasticmq, stopElasticmq } from "../setup/ensure-elasticmq.js";

/**
 * The SQS server the integration tests use: ElasticMQ on 127.0.0.1:9324 (scripts/elasticmq.sh,
 * started by the global setup; started here too if it is not running, and failing with how to
 * start it otherwise: tests never skip). A file may also ask for a private one, on a free port of
 * its own (so parallel runs on one machine never share it), which it may restart and which it
 * stops at the end.
 *
 * afterAll deletes every queue under the file's own prefix, and those of brokers passed to
 * track() (for suites that name their own queues): other runs on the same server are left alone.
 */
export interface SqsServer {
  /** sqs://127.0.0.1:PORT?region=us-east-1 plus `query` (e.g. "&visibility=2"). */
  url(query?: string): string;
  /** A fresh wqueue queue name under this file's prefix, e.g. `sqs-test-ab12cd34.q1`. */
  queueName(suffix?: string): string;
  /** A plain SDK client on the same server, for producing and inspecting as an outside client. */
  readonly raw: SQSClient;
  /** Stops and starts a private server (its queues are in memory: all gone afterwards). */
  restart(): Promise<void>;
  /** The broker, noting every queue it publishes to or consumes (and their `.dead`) for deletion. */
  track(broker: Broker, allFifo?: boolean): Broker;
  /** `[visible, in flight]` messages of an SQS queue, as SQS counts them. */
  counts(sqsName: string): Promise<[number, number]>;
}

export function requireSqs(options: { prefix: string; private?: boolean }): SqsServer {
  let port = ELASTICMQ_PORT;
  const prefix = `${options.prefix}-${randomUUID().slice(0, 8)}`;
  let raw: SQSClient | undefined;
  const client = () => {
    raw ??= new SQSClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
    });
    return raw;
  };
  let counter = 0;
  const tracked = new Set<string>();
  const note = (queue: string, allFifo: boolean) => {
    for (const name of [queue, `${queue}.dead`]) tracked.add(sqsQueueName(name, allFifo).name);
  };

  beforeAll(async () => {
    if (options.private) port = await freePort();
    await ensureElasticmq(port);
  }, 180_000);
  afterAll(async () => {
    if (options.private) {
      raw?.destroy();
      await stopElasticmq(port);
      return;
    }
    const admin = client();
    const { QueueUrls = [] } = await admin.send(new ListQueuesCommand({ QueueNamePrefix: prefix }));
    const named = await Promise.all(
      [...tracked].map((QueueName) => admin.send(new GetQueueUrlCommand({ QueueName })).then((answer) => answer.QueueUrl, () => undefined)),
    );
    const urls = new Set([...QueueUrls, ...named].filter((url): url is string => url !== undefined));
    await Promise.all([...urls].map((QueueUrl) => admin.send(new DeleteQueueCommand({ QueueUrl }))));
    admin.destroy();
  });

  return {
    url: (query = "") => `sqs://127.0.0.1:${port}?region=us-east-1${query}`,
    queueName: (suffix = "") => `${prefix}.q${++counter}${suffix}`,
    get raw() {
      return client();
    },
    track: (broker, allFifo = false) =>
      new Proxy(broker, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver);
          if (property !== "publish" && property !== "consumer") return typeof value === "function" ? value.bind(target) : value;
          return (queue: string, ...rest: unknown[]) => {
            note(queue, allFifo);
            return (value as (...args: unknown[]) => unknown).call(target, queue, ...rest);
          };
        },
      }),
    restart: async () => {
      if (!options.private) throw new Error("only a private server may be restarted");
      await stopElasticmq(port);
      await ensureElasticmq(port);
    },
    counts: async (sqsName) => {
      const { QueueUrl } = await client().send(new GetQueueUrlCommand({ QueueName: sqsName }));
      const names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] as const;
      const { Attributes = {} } = await client().send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: [...names] }));
      return [Number(Attributes.ApproximateNumberOfMessages), Number(Attributes.ApproximateNumberOfMessagesNotVisible)];
    },
  };
}

/** A loopback port with nothing listening on it (now). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
