import type { BatchCalls } from "./BatchCalls.js";
import { describeSqsError } from "./sqs-client.js";

/** A received, unsettled message as the keeper sees it. */
export interface Held {
  readonly url: string;
  readonly receipt: string;
  /** When SQS makes it visible again unless extended (ms since the epoch, conservative). */
  hiddenUntil: number;
  /** The extension in flight, if any. */
  heartbeat?: Promise<void> | undefined;
}

/** Errors after which extending is pointless: SQS no longer counts the message as held by us. */
const LOST = new Set(["ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue", "QueueDoesNotExist"]);

/**
 * The heartbeat of one consumer's in-flight messages: a handler that runs longer than the
 * visibility timeout keeps its message, instead of SQS handing it to a second consumer meanwhile.
 *
 * Every `tickMs` (a quarter of the timeout), the messages with half their timeout or less left get
 * ChangeMessageVisibility(timeout) again, coalesced into batch calls (./BatchCalls.ts). release()
 * stops a message's heartbeat at settle and waits for an extension still in flight, so a nack's
 * own visibility change can never be overtaken by an older heartbeat.
 *
 * SQS keeps a message hidden for at most 12 hours after its receive: past that, extensions fail
 * and the message comes back (logged once per message).
 */
export class VisibilityKeeper {
  readonly #held = new Set<Held>();
  readonly #visibilityMs: number;
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly calls: BatchCalls,
    readonly visibilitySeconds: number,
    readonly log: (message: string) => void,
  ) {
    this.#visibilityMs = visibilitySeconds * 1000;
    this.#tickMs = Math.max(100, this.#visibilityMs / 4);
  }

  get size(): number {
    return this.#held.size;
  }

  hold(item: Held): void {
    this.#held.add(item);
    // unref: a held message alone does not keep the process alive (its handler does, while it runs).
    this.#timer ??= setInterval(() => this.#tick(), this.#tickMs).unref();
  }

  /** Stops extending `item`; resolves once no extension of it is in flight. */
  async release(item: Held): Promise<void> {
    this.#held.delete(item);
    if (this.#held.size === 0) this.#stopTimer();
    await item.heartbeat;
  }

  /** Stops every heartbeat and returns the items that were still held. */
  releaseAll(): Held[] {
    const items = [...this.#held];
    this.#held.clear();
    this.#stopTimer();
    return items;
  }

  #tick(): void {
    const now = Date.now();
    for (const item of this.#held) {
      if (item.heartbeat !== undefined || item.hiddenUntil - now > this.#visibilityMs / 2) continue;
      const sentAt = Date.now();
      item.heartbeat = this.calls
        .changeVisibility(item.url, item.receipt, this.visibilitySeconds)
        .then(
          () => {
            item.hiddenUntil = sentAt + this.#visibilityMs;
          },
          (error: unknown) => {
            if (!LOST.has((error as Error).name)) return; // network, throttling: the next tick tries again
            if (this.#held.delete(item)) this.log(`cannot keep a message hidden any longer (${describeSqsError(error)}); SQS will hand it out again`);
          },
        )
        .finally(() => {
          item.heartbeat = undefined;
        });
    }
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
