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
 * calls (./BatchCalls.ts); it is what Consumer.extend runs (the dispatcher's lease keeper). Until
 * that keeper drives every consumer, the keeper also runs its own timer (`ownTimer`): every
 * `tickMs` (a quarter of the timeout) it extends the messages with half their timeout or less left,
 * messages received and not yet handed out included.
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
  readonly #tickMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly calls: BatchCalls,
    readonly visibilitySeconds: number,
    readonly log: (message: string) => void,
    ownTimer = true,
  ) {
    this.#visibilityMs = visibilitySeconds * 1000;
    this.#tickMs = ownTimer ? Math.max(100, this.#visibilityMs / 4) : undefined;
  }

  get size(): number {
    return this.#held.size;
  }

  hold(item: Held): void {
    this.#held.add(item);
    // unref: a held message alone does not keep the process alive (its handler does, while it runs).
    if (this.#tickMs !== undefined) this.#timer ??= setInterval(() => this.#tick(), this.#tickMs).unref();
  }

  /** Stops extending `item`; resolves once no extension of it is in flight. */
  async release(item: Held): Promise<void> {
    this.#held.delete(item);
    if (this.#held.size === 0) this.#stopTimer();
    await item.heartbeat;
  }

  /** Stops every extension and returns the items that were still held. */
  releaseAll(): Held[] {
    const items = [...this.#held];
    this.#held.clear();
    this.#stopTimer();
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

  #tick(): void {
    const now = Date.now();
    const due = [...this.#held].filter((item) => item.hiddenUntil - now <= this.#visibilityMs / 2);
    this.extend(due).catch(() => {});
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
