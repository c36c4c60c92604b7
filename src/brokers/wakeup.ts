/**
 * A reusable wake-up call for consumers that wait for new messages: `wait()` resolves at the next
 * `notify()`, when the signal aborts, or after `timeoutMs`, whichever comes first.
 */
export class Wakeup {
  #waiters = new Set<() => void>();

  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  wait(signal: AbortSignal, timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        if (timer !== undefined) clearTimeout(timer);
        resolve();
      };
      const timer = Number.isFinite(timeoutMs) ? setTimeout(done, timeoutMs) : undefined;
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
