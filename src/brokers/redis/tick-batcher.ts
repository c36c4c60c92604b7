/** Batchers with a batch not sent yet; the process's "exit" sends them (see TickBatcher). */
const unsent = new Set<TickBatcher<unknown>>();
let exitHooked = false;

/**
 * Coalesces settle operations (acks) into one Redis call per turn of the event loop, as Broadway
 * groups acks: add() queues an item and returns a promise shared by its whole batch, which settles
 * once `send` has run for the batch. A worker that finishes 100 handlers in one turn sends one
 * command instead of 100. flush() sends what is queued now (before a close); it never rejects.
 *
 * A handler that calls process.exit() would end the process before that turn is over, and with it
 * the acks of the handlers that succeeded in it (they would run again, counted as deliveries, and
 * could reach a poison verdict). So the process's "exit" event flushes every unsent batch: a command
 * to a connected client is written to its socket synchronously, and the kernel still delivers bytes
 * written before the process ends. (SIGKILL leaves no such chance: those messages run again.)
 */
export class TickBatcher<T> {
  #items: T[] = [];
  #batch: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(readonly send: (items: T[]) => Promise<void>) {}

  add(item: T): Promise<void> {
    this.#items.push(item);
    if (this.#batch === undefined) {
      let resolve = () => {};
      let reject = (_error: Error) => {};
      const promise = new Promise<void>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      this.#batch = { promise, resolve, reject };
      setImmediate(this.#flush);
      unsent.add(this as TickBatcher<unknown>);
      if (!exitHooked) {
        exitHooked = true;
        process.on("exit", () => {
          for (const batcher of unsent) void batcher.flush();
        });
      }
    }
    return this.#batch.promise;
  }

  flush(): Promise<void> {
    return this.#flush().catch(() => {}); // each add() caller hears about a failure
  }

  readonly #flush = (): Promise<void> => {
    const batch = this.#batch;
    if (batch === undefined) return Promise.resolve();
    const items = this.#items;
    this.#batch = undefined;
    unsent.delete(this as TickBatcher<unknown>);
    this.#items = [];
    this.send(items).then(batch.resolve, batch.reject);
    return batch.promise;
  };
}
