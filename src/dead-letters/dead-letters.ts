import type { Subscription } from "../app/types.js";
import { type BrokerSet, DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import type { Broker, Delivery, Headers } from "../brokers/contract.js";
import { DEAD_HEADER_PREFIX, defaultDeadLetterQueue, originalHeaders } from "../brokers/dead-letter.js";
import { ConfigError } from "../errors.js";
import { isQueuePattern, matchesQueuePattern } from "../brokers/queue-pattern.js";

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

/**
 * The dead letters of a queue the app (a `WQueue`) listens on, by name or through a pattern that
 * matches it (its own subscription first, as the worker decides); undefined for other queues.
 */
export async function deadLetterTarget(app: { readonly subscriptions: readonly Subscription[] }, brokers: BrokerSet, queue: string): Promise<DeadLetterTarget | undefined> {
  const subscription =
    app.subscriptions.find((s) => s.queue === queue) ??
    app.subscriptions.find((s) => isQueuePattern(s.queue) && matchesQueuePattern(s.queue, queue));
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
 * How long a drain waits for a dead letter it knows is waiting: the first receive of a consumer can
 * take seconds before anything comes (a Kafka group join, a Kinesis shard lease pickup).
 */
export const ARRIVAL_WAIT_MS = 60_000;
/** Once the letters counted at the start are taken: how long the queue must stay empty to be done. */
export const QUIET_MS = 500;

/**
 * How many dead letters wait in `deadQueue` (at most `limit`), asked before any consumer attaches:
 * the backlog where the broker counts it, else a browse. A Redis stream's backlog leaves out letters
 * read but never acked (a drain that died), so a 0 is checked by a browse too. Undefined: unknown.
 */
async function waitingCount(broker: Broker, deadQueue: string, limit: number): Promise<number | undefined> {
  const backlog = broker.backlog ? Math.min(limit, await broker.backlog(deadQueue)) : undefined;
  if (backlog !== undefined && backlog > 0) return backlog;
  return broker.browse ? (await broker.browse(deadQueue, limit)).length : backlog;
}

/**
 * Takes up to `limit` dead letters, one batch at a time, and hands each to `each`. A dead letter is
 * acked only after `each` succeeded. Only letters that died before the drain began are taken: a
 * replayed message that dies again while the drain runs is left for next time instead of going
 * round in circles.
 *
 * When to stop: a fixed quiet time alone would stop early on a broker whose consumer needs seconds
 * to attach (replay would report 0 with letters waiting). So the drain first counts what waits
 * (waitingCount): none, and it is done without attaching; some, and it waits up to `arrivalMs` for
 * each batch until it has taken that many, and stops there: a letter the count missed (SQS's count
 * is approximate) waits for the next run. Where the count is unknown, it
 * takes one batch that way, then waits only `quietMs` for more. A count that is too high (a letter
 * another consumer holds) costs one `arrivalMs`, never a letter.
 *
 * Why not wait `quietMs` for more after the count: a receive cut short leaves SQS's long
 * poll open on the server, which neither SQS nor ElasticMQ cancels when the client gives up; the
 * next letter to die went to that orphaned poll and stayed hidden for the visibility timeout, so a
 * purge run just after a replay reported 0 and the next replay found the letter.
 */
async function drain(
  broker: Broker,
  deadQueue: string,
  limit: number,
  each: (delivery: Delivery) => Promise<void>,
  waits: { arrivalMs?: number; quietMs?: number } = {},
) {
  const { arrivalMs = ARRIVAL_WAIT_MS, quietMs = QUIET_MS } = waits;
  const startedAt = new Date().toISOString();
  const expected = await waitingCount(broker, deadQueue, limit);
  if (expected === 0) return 0;
  const consumer = broker.consumer(deadQueue);
  let done = 0;
  try {
    await consumer.ready?.();
    while (done < limit) {
      if (expected !== undefined && done >= expected) break;
      const waitMs = done < (expected ?? 1) ? arrivalMs : quietMs;
      const batch = await consumer.receive(Math.min(100, limit - done), AbortSignal.timeout(waitMs));
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

/** How deep a single dead letter is looked for (the dashboard lists at most 1000). */
export const FIND_ONE_LIMIT = 1000;

/** One dead letter by id, whole (headers with the stack, payload); undefined when it is not there. */
export async function findDeadLetter(broker: Broker, deadQueue: string, id: string): Promise<DeadLetterView | undefined> {
  return (await listDeadLetters(broker, deadQueue, FIND_ONE_LIMIT)).find((letter) => letter.id === id);
}

/** Whether one dead letter can be replayed or deleted on its own on this broker. */
export function canRemoveOne(broker: Broker): boolean {
  return broker.browse !== undefined && broker.removeWaiting !== undefined;
}

function assertCanRemoveOne(broker: Broker): asserts broker is Broker & Required<Pick<Broker, "removeWaiting">> {
  if (!canRemoveOne(broker)) {
    throw new ConfigError(`${broker.kind} cannot address one dead letter: replay or purge the whole dead-letter queue`);
  }
}

/**
 * Publishes dead letter `id` back to the queue it died on, then removes it: at least once (a crash
 * between the two, or a drain taking it meanwhile, leaves it in both). False when it was not there.
 */
export async function replayOneDeadLetter(target: DeadLetterTarget, id: string): Promise<boolean> {
  assertCanRemoveOne(target.broker);
  const letter = await findDeadLetter(target.broker, target.deadQueue, id);
  if (!letter) return false;
  if (!letter.queue) throw new ConfigError(`dead letter ${id} does not say which queue it came from`);
  await target.replayBroker.publish(letter.queue, [{ body: letter.body, headers: originalHeaders(letter.headers), key: letter.key }]);
  await target.broker.removeWaiting(target.deadQueue, id);
  return true;
}

/** Removes dead letter `id`; false when it is not waiting. */
export async function deleteOneDeadLetter(target: DeadLetterTarget, id: string): Promise<boolean> {
  assertCanRemoveOne(target.broker);
  return target.broker.removeWaiting(target.deadQueue, id);
}
