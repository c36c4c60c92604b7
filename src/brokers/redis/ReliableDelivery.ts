import type { DeadLetterReason, Headers } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { oneSlot } from "./cluster-keys.js";
import { unwrap, wrap } from "../envelope.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { delayedTag } from "./delayed-set.js";
import { mayBeEnvelope, NO_HEADERS } from "./read-envelope.js";
import type { ReliableConsumer } from "./ReliableConsumer.js";
import { parseItem, withDeliveries } from "./reliable-item.js";

/**
 * One message in a reliable consumer's processing list. `stored` is the item exactly as it sits
 * there (tagged, ./reliable-item.ts): settling finds it by those bytes. attempt = the envelope's
 * attempt (1 for a plain item) + deliveries - 1, so it grows on every delivery, including one that
 * follows a consumer's death. The delivery leaves the consumer's unsettled set once its settle
 * command has completed (or failed), never before, so a resync cannot hand back what is being acked.
 */
export class ReliableDelivery extends SettleOnceDelivery {
  readonly #consumer: ReliableConsumer;
  readonly stored: Buffer;
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly attempt: number;

  constructor(consumer: ReliableConsumer, stored: Buffer) {
    super();
    this.#consumer = consumer;
    this.stored = stored;
    const item = parseItem(stored);
    const payload = item?.payload ?? stored; // always tagged by the claim script; the fallback is defensive
    const deliveries = item?.deliveries ?? 1;
    this.id = item?.id ?? "untagged";
    if (!mayBeEnvelope(payload)) {
      this.body = payload;
      this.headers = NO_HEADERS;
      this.key = undefined;
      this.attempt = deliveries;
    } else {
      const message = unwrap(payload);
      this.body = message.body;
      this.headers = message.headers;
      this.key = message.key;
      this.attempt = message.attempt + deliveries - 1;
    }
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  /** The consumer that holds it (the broker-wide ack batch groups by it). */
  get owner(): ReliableConsumer {
    return this.#consumer;
  }

  get partition(): undefined {
    return undefined;
  }

  /** Batched: one script call for the acks of this turn (the batch untracks its deliveries). */
  protected doAck(): Promise<void> {
    return this.#consumer.acks.add(this);
  }

  /** Back to the tail of the queue (as mode=list retries), or into the delayed set. */
  protected doNack(delayMs: number, keepAttempt: boolean): Promise<void> {
    const consumer = this.#consumer;
    const { processing, source, delayed } = consumer.keys;
    const item = keepAttempt ? parseItem(this.stored) : undefined;
    // keepAttempt: put it back with this delivery uncounted, so the next one has the same attempt.
    const back = item ? [withDeliveries(item, item.deliveries - 1)] : [];
    const nacked = consumer.script.wqueueReliableNack(3, processing, source, delayed, this.stored, Math.ceil(delayMs), delayedTag(), ...back);
    return this.#done(
      nacked.then((moved) => {
        if (moved === 1 && delayMs > 0) consumer.context.noteDelayed(consumer.queue, delayMs);
      }),
    );
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    const consumer = this.#consumer;
    const letter = wrap({ body: this.body, headers: deadLetterHeaders(this, reason), key: this.key });
    const { processing } = consumer.keys;
    if (!oneSlot(processing, consumer.deadLetterQueue, consumer.context.clients.cluster)) {
      // A Cluster, the dead-letter queue in another slot: no one script can do both. The letter
      // first, then the removal: a crash between leaves the message in both (a duplicate), never in neither.
      const moved = consumer.script.rpush(consumer.deadLetterQueue, letter).then(() => consumer.script.wqueueReliableAck(1, processing, this.stored));
      return this.#done(moved);
    }
    return this.#done(consumer.script.wqueueReliableDead(2, processing, consumer.deadLetterQueue, this.stored, letter));
  }

  #done(settling: Promise<unknown>): Promise<void> {
    const forget = () => {
      this.#consumer.unsettled.delete(this);
    };
    return settling.then(forget, (error: unknown) => {
      forget();
      throw error;
    });
  }
}
