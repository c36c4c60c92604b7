import { setTimeout as sleep } from "node:timers/promises";
import { type Message, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { BrokerLog, Consumer, Delivery, OutgoingMessage } from "../contract.js";
import type { BatchCalls } from "./BatchCalls.js";
import type { QueueDirectory, QueueInfo } from "./QueueDirectory.js";
import { SqsDelivery } from "./SqsDelivery.js";
import { describeSqsError, isQueueMissing, isTransient } from "./sqs-client.js";
import type { SqsUrl } from "./sqs-url.js";
import { type Held, VisibilityKeeper } from "./VisibilityKeeper.js";

/** SQS hands out at most 10 messages per ReceiveMessage. */
const BATCH = 10;
/** Short polls sent at once to fill a large credit from a backlog (so up to 100 per receive). */
const MAX_PARALLEL_FILLS = 9;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

/** What a consumer and its deliveries use of their broker, and no more. */
export interface SqsConsumerContext {
  /** Redacted. */
  readonly url: string;
  readonly config: SqsUrl;
  /** The broker's client of long polls (sqs-client.ts says why it is not the one of acks). */
  readonly receiver: SQSClient;
  readonly queues: QueueDirectory;
  readonly calls: BatchCalls;
  readonly log: BrokerLog;
  /** The broker's publish: dead letters are copies in the dead-letter queue. */
  publish(queue: string, messages: OutgoingMessage[]): Promise<void>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: SqsConsumer): void;
}

/**
 * One queue's consumer. A poll long-polls (WaitTimeSeconds = the URL's `wait`, default 20) for
 * min(10, max) messages; when that comes back full, a backlog is likely, and the rest of the credit
 * is asked for at once with parallel short polls. It never asks for more than the `max` of the
 * receive that started it: credit is the only prefetch. Every message is received with
 * VisibilityTimeout = the URL's `visibility` (`leaseMs`) and kept hidden while unsettled by
 * ./VisibilityKeeper.ts through `extend`, which the dispatcher's lease keeper calls for every
 * delivery it holds. Messages received and not yet handed out have no such renewal: see
 * #takeBuffered.
 *
 * The poll belongs to the consumer, not to one receive() call: a receive whose signal aborts
 * returns [] at once and leaves its poll running, and the next receive takes over that poll and
 * its messages (a smaller `max` leaves the rest held in `#buffer` for the receive after). Cancelling
 * the HTTP request instead would not cancel the poll on the server (neither SQS nor ElasticMQ
 * notices): a message arriving meanwhile would go to nobody and stay hidden for the whole
 * visibility timeout. Only close() cancels the poll, through the SDK's abortSignal: should the
 * server still hand a message to it, that message comes back after the visibility timeout with
 * its attempt counted (at least once, never lost).
 *
 * A network failure, throttling or a server error is retried with backoff (logged), so a restart
 * of a local server is ridden out; a queue that vanished is created again. Other errors (access
 * denied, a bad name) reject the receive, for the worker to report.
 */
export class SqsConsumer implements Consumer {
  readonly leaseMs: number;
  readonly #keeper: VisibilityKeeper;
  readonly #closing = new AbortController();
  /** Received, held under the heartbeat, not yet handed out. */
  #buffer: SqsDelivery[] = [];
  #polling: Promise<void> | undefined;
  #receiving: Promise<unknown> | undefined;
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: SqsConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
  ) {
    const log = (message: string) => context.log("warn", `sqs ${context.url}: ${queue}: ${message}`);
    this.leaseMs = context.config.visibilitySeconds * 1000;
    this.#keeper = new VisibilityKeeper(context.calls, context.config.visibilitySeconds, log);
  }

  /** ChangeMessageVisibilityBatch(visibility) for these unsettled deliveries (see VisibilityKeeper.extend). */
  extend(deliveries: readonly Delivery[]): Promise<void> {
    return this.#keeper.extend(deliveries.filter((delivery) => delivery instanceof SqsDelivery));
  }

  receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    if (this.#closing.signal.aborted || signal.aborted) return Promise.resolve([]);
    const receiving = this.#receive(Math.max(1, Math.floor(max)), signal);
    this.#receiving = receiving;
    return receiving;
  }

  /** Stops the heartbeat of a settling delivery (waiting for one in flight). */
  release(delivery: SqsDelivery): Promise<void> {
    return this.#keeper.release(delivery);
  }

  /** Idempotent: ends a pending receive and poll, then makes every unsettled message visible again at once. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      this.context.closed(this);
      await Promise.allSettled([this.#receiving, this.#polling]);
      this.#buffer = [];
      await this.#giveBack(this.#keeper.releaseAll());
    })();
    return this.#closed;
  }

  async #receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    for (let failures = 0; ; ) {
      if (this.#buffer.length > 0) {
        const fresh = this.#takeBuffered(max);
        if (fresh.length > 0) return fresh;
        continue;
      }
      if (signal.aborted || this.#closing.signal.aborted) return [];
      try {
        await untilAborted(this.#poll(max), signal);
        if (failures > 0) this.context.log("info", `sqs ${this.context.url}: receiving from ${this.queue} again`);
        failures = 0;
      } catch (error) {
        if (this.#closing.signal.aborted) return [];
        const missing = isQueueMissing(error);
        if (missing) this.context.queues.forget(this.queue); // deleted, or the server restarted: create it again
        else if (!isTransient(error)) throw error;
        failures += 1;
        if (failures === 1 || failures % 20 === 0) {
          const why = missing ? "the queue vanished; creating it again" : describeSqsError(error);
          this.context.log("warn", `sqs ${this.context.url}: cannot receive from ${this.queue} (${why}); retrying`);
        }
        await sleep(Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1)), undefined, { signal }).catch(() => {});
      }
    }
  }

  /**
   * Up to `max` buffered messages with at least a third of the visibility left, so they stay hidden
   * until the first extension of the caller's lease keeper. Older ones (held here unextended) are
   * dropped: SQS hands them out again when their visibility runs out, which is near; giving them
   * back with a receipt that may already be stale could touch another consumer's delivery.
   */
  #takeBuffered(max: number): SqsDelivery[] {
    const now = Date.now();
    const taken = this.#buffer.splice(0, max);
    const fresh = taken.filter((delivery) => delivery.hiddenUntil - now >= this.leaseMs / 3);
    for (const delivery of taken) if (!fresh.includes(delivery)) void this.#keeper.release(delivery);
    return fresh;
  }

  /** The poll in flight, or a new one for up to `max` messages; its messages land in `#buffer`. */
  #poll(max: number): Promise<void> {
    if (this.#polling === undefined) {
      const polling = (async () => {
        const queue = await this.context.queues.info(this.queue);
        const messages = await this.#fetch(queue, max, this.#closing.signal);
        this.#buffer.push(...(await this.#deliver(queue, messages)));
      })();
      this.#polling = polling;
      const done = () => {
        if (this.#polling === polling) this.#polling = undefined;
      };
      polling.then(done, done); // also marks a failure of a poll nobody waits for any more as handled
    }
    return this.#polling;
  }

  /** Up to `max` messages: a long poll, then parallel short polls while the first came back full. */
  async #fetch(queue: QueueInfo, max: number, signal: AbortSignal): Promise<Message[]> {
    const first = Math.min(BATCH, max);
    const messages = await this.#receiveCall(queue.url, first, this.context.config.waitSeconds, signal);
    const rest = max - messages.length;
    if (messages.length < first || rest <= 0) return messages;
    // Not aborted: short polls answer at once, and their messages must not be dropped half-received.
    const fills = Array.from({ length: Math.min(MAX_PARALLEL_FILLS, Math.ceil(rest / BATCH)) }, (_, i) =>
      this.#receiveCall(queue.url, Math.min(BATCH, rest - i * BATCH), 0, undefined),
    );
    for (const fill of await Promise.allSettled(fills)) if (fill.status === "fulfilled") messages.push(...fill.value);
    return messages;
  }

  async #receiveCall(url: string, count: number, waitSeconds: number, signal: AbortSignal | undefined): Promise<Message[]> {
    const command = new ReceiveMessageCommand({
      QueueUrl: url,
      MaxNumberOfMessages: count,
      WaitTimeSeconds: waitSeconds,
      VisibilityTimeout: this.context.config.visibilitySeconds,
      MessageSystemAttributeNames: ["ApproximateReceiveCount", "MessageGroupId"],
      MessageAttributeNames: ["All"],
    });
    const answer = await this.context.receiver.send(command, signal ? { abortSignal: signal } : {});
    return answer.Messages ?? [];
  }

  /** Deliveries held under the heartbeat; given straight back when closing meanwhile. */
  async #deliver(queue: QueueInfo, messages: Message[]): Promise<SqsDelivery[]> {
    const receivedAt = Date.now();
    const deliveries = messages.map((message) => new SqsDelivery(this, queue, message, receivedAt));
    if (this.#closing.signal.aborted) {
      await this.#giveBack(deliveries);
      return [];
    }
    for (const delivery of deliveries) this.#keeper.hold(delivery);
    return deliveries;
  }

  async #giveBack(items: Held[]): Promise<void> {
    await Promise.allSettled(
      items.map(async (item) => {
        await item.heartbeat;
        await this.context.calls.changeVisibility(item.url, item.receipt, 0);
      }),
    );
  }
}

/**
 * Waits for `work` unless `signal` aborts first (then resolves, leaving `work` running). The abort
 * listener keeps a caller's AbortSignal.timeout() alive (an AbortSignal.any() would not on Node 20:
 * nodejs#57736) and is removed when either side finishes.
 */
function untilAborted(work: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
