import type { Subscription } from "../app/types.js";
import { type BrokerSet, DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import type { Broker, Delivery, Headers } from "../brokers/contract.js";
import { DEAD_HEADER_PREFIX, defaultDeadLetterQueue, originalHeaders } from "../brokers/dead-letter.js";
import { ConfigError } from "../errors.js";

/**
 * Operations on a dead-letter queue, shared by `wqueue dead-letters` and (later) the dashboard.
 * A dead letter is the original body with `x-wqueue-dead-*` headers (see brokers/dead-letter.ts).
 */
export interface DeadLetterView {
  id: string;
  /** The queue it died on (where replay sends it). */
  queue: string | undefined;
  reason: string | undefined;
  error: string | undefined;
  attempts: number | undefined;
  at: string | undefined;
  key: string | undefined;
  headers: Headers;
  body: Uint8Array;
}

/** Where a queue's dead letters are (`broker`, `deadQueue`), and the queue's own broker, which replay publishes to. */
export interface DeadLetterTarget {
  broker: Broker;
  deadQueue: string;
  replayBroker: Broker;
}

/** The dead letters of a queue the app (a `WQueue`) listens on; undefined for other queues. */
export async function deadLetterTarget(app: { readonly subscriptions: readonly Subscription[] }, brokers: BrokerSet, queue: string): Promise<DeadLetterTarget | undefined> {
  const subscription = app.subscriptions.find((s) => s.queue === queue);
  if (!subscription) return undefined;
  const { options } = subscription;
  const replayBroker = await brokers.get(options.broker ?? DEFAULT_BROKER_NAME);
  const broker = options.deadLetterBroker === undefined ? replayBroker : await brokers.get(options.deadLetterBroker);
  return { broker, deadQueue: options.deadLetterQueue ?? defaultDeadLetterQueue(queue), replayBroker };
}

/** `orders` -> `orders.dead`; a name that already ends in `.dead` is taken as it is. */
export function deadQueueOf(queue: string): string {
  return queue.endsWith(".dead") ? queue : defaultDeadLetterQueue(queue);
}

function view(message: { id: string; body: Uint8Array; headers: Headers; key: string | undefined }): DeadLetterView {
  const h = (name: string) => message.headers[`${DEAD_HEADER_PREFIX}${name}`];
  const errorName = h("error-name");
  const attempts = h("attempts");
  return {
    id: message.id,
    queue: h("queue"),
    reason: h("reason"),
    error: errorName === undefined ? undefined : `${errorName}: ${h("error-message") ?? ""}`,
    attempts: attempts === undefined ? undefined : Number(attempts),
    at: h("at"),
    key: message.key,
    headers: message.headers,
    body: message.body,
  };
}

export async function listDeadLetters(broker: Broker, deadQueue: string, limit: number): Promise<DeadLetterView[]> {
  if (!broker.browse) {
    throw new ConfigError(`${broker.kind} cannot show messages without taking them; use replay or purge`);
  }
  return (await broker.browse(deadQueue, limit)).map(view);
}

/**
 * Takes up to `limit` dead letters, one batch at a time, and hands each to `each`; stops when the
 * queue stays empty for `quietMs`. A dead letter is acked only after `each` succeeded. Only letters
 * that died before the drain began are taken: a replayed message that dies again while the drain
 * runs is left for next time instead of going round in circles.
 */
async function drain(broker: Broker, deadQueue: string, limit: number, each: (delivery: Delivery) => Promise<void>, quietMs = 500) {
  const startedAt = new Date().toISOString();
  const consumer = broker.consumer(deadQueue);
  let done = 0;
  try {
    while (done < limit) {
      const batch = await consumer.receive(Math.min(100, limit - done), AbortSignal.timeout(quietMs));
      if (batch.length === 0) break;
      const newer = batch.findIndex((delivery) => (view(delivery).at ?? "") > startedAt);
      for (const delivery of newer === -1 ? batch : batch.slice(0, newer)) {
        await each(delivery);
        await delivery.ack();
        done += 1;
      }
      if (newer !== -1) {
        await Promise.all(batch.slice(newer).map((delivery) => delivery.nack()));
        break;
      }
    }
  } finally {
    await consumer.close();
  }
  return done;
}

/**
 * Publishes dead letters back to the queue they died on (or `to`) as new messages, attempt 1, on
 * `replayTo` (default: the broker they are on; another when the queue's dead letters go elsewhere).
 */
export function replayDeadLetters(broker: Broker, deadQueue: string, options: { limit: number; to?: string; replayTo?: Broker }): Promise<number> {
  const replayTo = options.replayTo ?? broker;
  return drain(broker, deadQueue, options.limit, async (delivery) => {
    const target = options.to ?? view(delivery).queue;
    if (!target) throw new ConfigError(`dead letter ${delivery.id} does not say which queue it came from: use --to QUEUE`);
    await replayTo.publish(target, [{ body: delivery.body, headers: originalHeaders(delivery.headers), key: delivery.key }]);
  });
}

export function purgeDeadLetters(broker: Broker, deadQueue: string, options: { limit: number }): Promise<number> {
  return drain(broker, deadQueue, options.limit, async () => {});
}
