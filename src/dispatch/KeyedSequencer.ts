/**
 * Runs tasks with the same key one after another, in the order they were submitted, and tasks
 * with different keys (or no key) in parallel. One promise chain per busy key; idle keys cost nothing.
 */
export class KeyedSequencer {
  readonly #tails = new Map<string, Promise<void>>();

  run<T>(key: string | undefined, task: () => Promise<T>): Promise<T> {
    if (key === undefined) return task();
    const result = (this.#tails.get(key) ?? Promise.resolve()).then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running. */
  get busyKeys(): number {
    return this.#tails.size;
  }
}
