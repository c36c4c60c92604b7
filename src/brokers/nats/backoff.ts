/**
 * A retry that waits longer after each failure in a row: RETRY_FIRST_MS, doubling up to
 * RETRY_MAX_MS, reset by a success. At most one retry is scheduled at a time; its timer does not
 * keep the process alive (close() cancels it anyway).
 */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

export class Backoff {
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;

  /** Failures in a row so far. */
  get failures(): number {
    return this.#failures;
  }

  /** A retry is scheduled and has not run yet. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  succeeded(): void {
    this.#failures = 0;
  }

  /** Counts a failure and runs `retry` after the next delay; returns the delay. */
  failed(retry: () => void): number {
    this.#failures += 1;
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (this.#failures - 1));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      retry();
    }, delay);
    this.#timer.unref();
    return delay;
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** Waits for `work` (its failure ignored), at most `ms`. */
export async function withDeadline(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([work.catch(() => {}), deadline]);
  clearTimeout(timer);
}
