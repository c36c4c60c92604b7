import type { DeadLetterReason, Headers } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { delayedKey, delayedTag } from "./delayed-set.js";
import type { StreamConsumer } from "./StreamConsumer.js";
import { frameFields, fromFields, toFields } from "./stream-fields.js";
import type { StreamEntry } from "./stream-reader.js";

/**
 * One stream entry taken for a receive. attempt = the entry's `attempt` field (1 when absent) + the
 * group's delivery count - 1: a copy re-added by nack starts one higher, and an entry claimed from a
 * dead consumer counts that consumer's delivery too. The delivery leaves its consumer's unsettled
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

  get partition(): undefined {
    return undefined;
  }

  /** Batched: one XACK for the acks of this turn (the batch untracks its deliveries). */
  protected doAck(): Promise<void> {
    return this.#consumer.acks.add(this);
  }

  /** XACK, and a copy with attempt + 1 at the end of the stream, or in the delayed set. */
  protected doNack(delayMs: number): Promise<void> {
    const consumer = this.#consumer;
    const { group, maxlen } = consumer.broker.options;
    const fields = toFields({ body: this.body, headers: this.headers, key: this.key, attempt: this.attempt + 1 });
    const delay = Math.ceil(delayMs);
    const copy = delay > 0 ? [delayedTag(), frameFields(fields)] : ["", ...fields];
    const nacked = consumer.script.wqueueStreamNack(2, this.queue, delayedKey(this.queue), group, this.id, delay, maxlen, ...copy);
    return this.#done(
      nacked.then((moved) => {
        if (moved === 1 && delay > 0) consumer.broker.noteDelayed(this.queue, delay);
      }),
    );
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    const consumer = this.#consumer;
    const fields = toFields({ body: this.body, headers: deadLetterHeaders(this, reason), key: this.key });
    const { group } = consumer.broker.options;
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
