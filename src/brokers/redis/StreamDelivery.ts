import type { DeadLetterReason, Headers } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { oneSlot } from "./cluster-keys.js";
import { SettleOnceDelivery } from "../settle-once.js";
import type { StreamConsumer } from "./StreamConsumer.js";
import { fromFields, toFields } from "./stream-fields.js";
import type { StreamEntry } from "./stream-reader.js";
import { retryKey } from "./stream-scripts.js";

/**
 * One stream entry taken for a receive. attempt = the entry's `attempt` field (1 when absent, more
 * for a retry that a producer re-published) + the group's delivery count - 1: the count is kept by
 * Redis in the group's pending list and grows on every delivery, the claim of a nacked entry and of
 * a dead consumer's entry included. The delivery leaves its consumer's unsettled
 * map once its settle command has completed (or failed).
 */
export class StreamDelivery extends SettleOnceDelivery {
  readonly #consumer: StreamConsumer;
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly attempt: number;

  constructor(consumer: StreamConsumer, entry: StreamEntry) {
    super();
    this.#consumer = consumer;
    this.id = entry.id;
    const message = fromFields(entry.fields);
    this.body = message.body;
    this.headers = message.headers;
    this.key = message.key;
    this.attempt = message.attempt + entry.deliveries - 1;
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  /** The consumer that holds it until it is settled. */
  get owner(): StreamConsumer {
    return this.#consumer;
  }

  get partition(): undefined {
    return undefined;
  }

  /** Batched: one XACK for the acks of this turn (the batch untracks its deliveries). */
  protected doAck(): Promise<void> {
    return this.#consumer.acks.add(this);
  }

  /** Kept pending, due again after `delayMs` in the group's retry set: no copy in the stream. */
  protected doNack(delayMs: number): Promise<void> {
    const consumer = this.#consumer;
    const { group } = consumer.context.options;
    const delay = Math.ceil(delayMs);
    const nacked = consumer.script.wqueueStreamNack(2, this.queue, retryKey(this.queue, group, consumer.context.clients.cluster), group, consumer.context.consumerName, this.id, delay);
    return this.#done(
      nacked.then((kept) => {
        if (kept === 1) consumer.context.noteRetry(this.queue, delay);
      }),
    );
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    const consumer = this.#consumer;
    const fields = toFields({ body: this.body, headers: deadLetterHeaders(this, reason), key: this.key });
    const { group } = consumer.context.options;
    if (!oneSlot(this.queue, consumer.deadLetterQueue, consumer.context.clients.cluster)) {
      // A Cluster, the dead-letter stream in another slot: no one script can do both. The letter
      // first, then the XACK: a crash between leaves the message in both (a duplicate), never in neither.
      const moved = consumer.script.xadd(consumer.deadLetterQueue, "*", ...fields).then(() => consumer.script.xack(this.queue, group, this.id));
      return this.#done(moved);
    }
    return this.#done(consumer.script.wqueueStreamDead(2, this.queue, consumer.deadLetterQueue, group, this.id, ...fields));
  }

  #done(settling: Promise<unknown>): Promise<void> {
    const forget = () => {
      this.#consumer.unsettled.delete(this.id);
    };
    return settling.then(forget, (error: unknown) => {
      forget();
      throw error;
    });
  }
}
