import type { BatchCalls } from "./BatchCalls.js";
import { describeSqsError } from "./sqs-client.js";

/** A received, unsettled message as the keeper sees it. */
export interface Held {
  readonly url: string;
  readonly receipt: string;
  /** When SQS makes it visible again unless extended (ms since the epoch, conservative). */
  hiddenUntil: number;
  /** The extension in flight, if any (never rejects). */
  heartbeat?: Promise<void> | undefined;
}

/** Errors after which extending is pointless: SQS no longer counts the message as held by us. */
const LOST = new Set(["ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue", "QueueDoesNotExist"]);

/**
 * Keeps one consumer's received, unsettled messages hidden: a handler that runs longer than the
 * visibility timeout keeps its message, instead of SQS handing it to a second consumer meanwhile.
 *
 * extend() sends ChangeMessageVisibility(timeout) for the given held messages, coalesced into batch
 * calls (./BatchCalls.ts); it is what Consumer.extend runs, driven by the dispatcher's lease keeper
 * (src/dispatch/LeaseKeeper.ts) like every other broker's lease: no timer of its own here.
 *
 * release() stops extending a message at settle and waits for an extension still in flight, so a
 * nack's own visibility change can never be overtaken by an older extension.
 *
 * SQS keeps a message hidden for at most 12 hours after its receive: past that, extensions fail
 * and the message comes back (logged once per message).
 */
export class VisibilityKeeper {
  readonly #held = new Set<Held>();
  readonly #visibilityMs: number;

  constructor(
    readonly calls: BatchCalls,
    readonly visibilitySeconds: number,
    readonly log: (message: string) => void,
  ) {
    this.#visibilityMs = visibilitySeconds * 1000;
  }

  get size(): number {
    return this.#held.size;
  }

  hold(item: Held): void {
    this.#held.add(item);
  }

  /** Stops extending `item`; resolves once no extension of it is in flight. */
  async release(item: Held): Promise<void> {
    this.#held.delete(item);
    await item.heartbeat;
  }

  /** Stops every extension and returns the items that were still held. */
  releaseAll(): Held[] {
    const items = [...this.#held];
    this.#held.clear();
    return items;
  }

  /**
   * Hides these items for the whole timeout from now; items not held (settled, lost, another
   * consumer's) are skipped, and one with an extension in flight shares it. Rejects when SQS could
   * not be reached for some (network, throttling): the next round tries again.
   */
  async extend(items: readonly Held[]): Promise<void> {
    const outcomes = await Promise.allSettled(items.filter((item) => this.#held.has(item)).map((item) => this.#extend(item)));
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw failed.reason;
  }

  #extend(item: Held): Promise<void> {
    if (item.heartbeat !== undefined) return item.heartbeat;
    const sentAt = Date.now();
    const call = this.calls.changeVisibility(item.url, item.receipt, this.visibilitySeconds).then(
      () => {
        item.hiddenUntil = sentAt + this.#visibilityMs;
      },
      (error: unknown) => {
        if (!LOST.has((error as Error).name)) throw error; // network, throttling: the next round tries again
        if (this.#held.delete(item)) this.log(`cannot keep a message hidden any longer (${describeSqsError(error)}); SQS will hand it out again`);
      },
    );
    item.heartbeat = call
      .catch(() => {})
      .finally(() => {
        item.heartbeat = undefined;
      });
    return call;
  }
}
