/**
 * A take waits until min(want, limit / this) credits are free rather than taking each credit as it
 * frees: otherwise, with more busy queues than the limit, handlers finishing one at a time would
 * hand out batches of one, and every message would cost a broker round trip of its own.
 */
const TAKE_FLOOR_DIVISOR = 4;

/**
 * The worker-wide concurrency limit, as credit: a subscription takes credit before it asks its
 * broker for messages and gives back what it did not use, so the sum of messages being fetched
 * or run never exceeds `limit`. Credit is shared fairly: while several subscriptions wait, none
 * takes more than `limit / subscriptions`, so one busy queue cannot starve the others.
 */
export class CreditPool {
  #used = 0;
  readonly #waiters: { want: number; fairShare: boolean; grant: (n: number) => void }[] = [];

  constructor(
    public limit: number,
    /** Subscriptions sharing the pool, for the fair share. */
    public sharers: number,
  ) {}

  /**
   * One more subscription shares the pool (a queue found by a pattern subscription while running):
   * the fair share shrinks, and the limit is raised to at least `minLimit` (each queue keeps one
   * receive outstanding). Waiters get what a higher limit frees.
   */
  addSharer(minLimit: number): void {
    this.sharers += 1;
    this.#sharersChanged.abort();
    this.#sharersChanged = new AbortController();
    if (minLimit > this.limit) {
      this.limit = minLimit;
      this.#grantWaiting();
    }
  }

  #sharersChanged = new AbortController();

  /** Aborts when a sharer is added: a receive that holds its credit only while its queue is alone listens to it. */
  get sharersChanged(): AbortSignal {
    return this.#sharersChanged.signal;
  }

  get used(): number {
    return this.#used;
  }

  /**
   * Resolves with 1..want credits, waiting while none is free; 0 if aborted. Waiters are served
   * first come, first served. `fairShare`: at most `limit / sharers`, for credit that may be held
   * while a queue is idle (a pending receive); without it, up to all that is free (a take, which
   * returns at once: turns in arrival order keep it fair, and batches stay large).
   */
  acquire(want: number, signal: AbortSignal, fairShare = true): Promise<number> {
    const granted = this.#waiters.length > 0 ? 0 : this.#tryGrant(want, fairShare);
    if (granted > 0 || signal.aborted) return Promise.resolve(granted);
    return new Promise((resolve) => {
      const waiter = {
        want,
        fairShare,
        grant: (n: number) => {
          signal.removeEventListener("abort", onAbort);
          resolve(n);
        },
      };
      const onAbort = () => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        resolve(0);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  release(n: number): void {
    if (n <= 0) return;
    this.#used -= n;
    this.#grantWaiting();
  }

  #grantWaiting(): void {
    while (this.#waiters.length > 0) {
      const { want, fairShare } = this.#waiters[0] as { want: number; fairShare: boolean };
      const granted = this.#tryGrant(want, fairShare);
      if (granted === 0) break;
      this.#waiters.shift()?.grant(granted);
    }
  }

  #tryGrant(want: number, fairShare: boolean): number {
    const free = this.limit - this.#used;
    if (!fairShare && free < Math.min(want, Math.max(1, Math.floor(this.limit / TAKE_FLOOR_DIVISOR)))) return 0;
    const share = fairShare ? Math.max(1, Math.floor(this.limit / Math.max(1, this.sharers))) : free;
    const granted = Math.max(0, Math.min(want, free, share));
    this.#used += granted;
    return granted;
  }
}
