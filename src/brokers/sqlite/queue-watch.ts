import { Wakeup } from "../wakeup.js";
import type { MessageStore } from "./MessageStore.js";

/** Every QueueWatch of this process, per database file: a publish wakes the watches of its file. */
const watchesByPath = new Map<string, Set<QueueWatch>>();

/** Wakes this process's waiting consumers of `queue` on every SqliteBroker of the file at `path`. */
export function notifyQueue(path: string, queue: string): void {
  for (const watch of watchesByPath.get(path) ?? []) watch.notify(queue);
}

/**
 * The one waiter of a SqliteBroker for all its idle consumers, whatever their number. A consumer
 * whose take found nothing calls until(queue); the watch wakes it when its queue may hold a
 * visible row:
 * - at once on a publish, nack or close of that queue in this process (notifyQueue);
 * - otherwise after ONE query over every waited-for queue (the earliest `visible_at` of each, an
 *   index seek per queue), run when another process committed to the file (`PRAGMA data_version`,
 *   read every `poll` ms) or when the earliest hidden row is due; a consumer that starts waiting
 *   is looked at alone (with the others that started since the last look), so 1,000 queues going
 *   dry one by one cost 1,000 small queries, not 1,000 queries over every waiting queue.
 * So an idle worker over 1,000 queues reads data_version once per `poll`, not 1,000 times, and a
 * commit elsewhere costs one query, not 1,000 peeks. The woken consumer takes (or finds that
 * another consumer took first and waits again).
 */
export class QueueWatch {
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #wakeup = new Wakeup();
  readonly #never = new AbortController().signal;
  /** Queues that started waiting since the last look: looked at in the next round, alone. */
  readonly #fresh = new Set<string>();
  #running = false;
  #closed = false;

  constructor(
    readonly path: string,
    readonly store: () => MessageStore,
    readonly pollMs: number,
  ) {
    let watches = watchesByPath.get(path);
    if (watches === undefined) {
      watches = new Set();
      watchesByPath.set(path, watches);
    }
    watches.add(this);
  }

  /** Resolves when `queue` may hold a visible row, when `signal` aborts, or when the watch closes. */
  until(queue: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(queue);
      if (waiters === undefined) {
        waiters = new Set();
        this.#waiters.set(queue, waiters);
      }
      const done = () => {
        const current = this.#waiters.get(queue);
        current?.delete(done);
        if (current?.size === 0) this.#waiters.delete(queue);
        signal.removeEventListener("abort", done);
        resolve();
      };
      waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
      this.#fresh.add(queue);
      this.#wakeup.notify();
      if (!this.#running) void this.#run();
    });
  }

  notify(queue: string): void {
    this.#wake(queue);
  }

  /** Wakes every waiter; later until() calls resolve at once. */
  close(): void {
    this.#closed = true;
    watchesByPath.get(this.path)?.delete(this);
    if (watchesByPath.get(this.path)?.size === 0) watchesByPath.delete(this.path);
    for (const queue of [...this.#waiters.keys()]) this.#wake(queue);
    this.#wakeup.notify();
  }

  #wake(queue: string): void {
    const waiters = this.#waiters.get(queue);
    if (waiters === undefined) return;
    for (const done of [...waiters]) done();
  }

  async #run(): Promise<void> {
    this.#running = true;
    let seenVersion = Number.NaN;
    let dueAt = Number.POSITIVE_INFINITY;
    try {
      while (this.#waiters.size > 0 && !this.#closed) {
        const store = this.store();
        const now = Date.now();
        const version = store.dataVersion();
        const all = version !== seenVersion || now >= dueAt;
        if (all || this.#fresh.size > 0) {
          const looking = all ? [...this.#waiters.keys()] : [...this.#fresh].filter((queue) => this.#waiters.has(queue));
          this.#fresh.clear();
          if (all) {
            seenVersion = version;
            dueAt = Number.POSITIVE_INFINITY;
          }
          for (const [queue, next] of store.nextVisibleOf(looking)) {
            if (next <= now) this.#wake(queue);
            else dueAt = Math.min(dueAt, next);
          }
        }
        if (this.#waiters.size === 0) break;
        await this.#wakeup.wait(this.#never, Math.max(0, Math.min(this.pollMs, dueAt - Date.now())));
      }
    } catch {
      // The store is closed or failed: every waiter tries its take, which reports the error.
      for (const queue of [...this.#waiters.keys()]) this.#wake(queue);
    } finally {
      this.#running = false;
    }
  }
}
