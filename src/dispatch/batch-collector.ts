import type { Delivery } from "../brokers/contract.js";
import { failed, type RunResult } from "../pipeline/outcome.js";
import type { Next, StepResult } from "./steps/step.js";

export interface BatchCollectorOptions {
  /** Most messages per batch. */
  maxSize: number;
  /** How long the first message of a batch waits for more. */
  maxWaitMs: number;
  /**
   * The most messages the subscription can ever hold at once (its concurrency): a batch that
   * reaches it goes at once, since no more can arrive before one settles.
   */
  concurrency: number;
  /** Runs one batch: a result per delivery, in order (Runner.runBatch). */
  run: (batch: readonly Delivery[], signal: AbortSignal) => Promise<RunResult[]>;
}

interface Waiting {
  delivery: Delivery;
  signal: AbortSignal;
  resolve: (result: StepResult) => void;
  reject: (error: unknown) => void;
}

/**
 * The last step of a batch subscription's chain, in place of the runner: each delivery, having
 * passed its own policies (stats, retry decision, timeout, suspects), waits here until the batch
 * is full (`maxSize`, or the subscription's concurrency if lower) or `maxWaitMs` has passed since
 * its first message; the batch then runs in one runner call and each delivery gets its own result
 * back, so everything outside this step still sees one message: its outcome counted, judged
 * (retry or dead letter, one by one) and settled on its own. Only batch subscriptions have this
 * step: others run each message at once, with no window.
 *
 * The batch's signal aborts when any of its messages' signals does (shutdown deadline; a soft
 * timeout, counted per message from its arrival in the chain, so the first message's fires first):
 * a batch so timed out is a HandlerTimeout for each of its messages. A message given up while it
 * waits (its signal aborted: it was already given back) leaves without running.
 */
export function collectBatches(options: BatchCollectorOptions): Next & { flush(): void } {
  const { maxSize, maxWaitMs, run } = options;
  const fullAt = Math.max(1, Math.min(maxSize, options.concurrency));
  let waiting: Waiting[] = [];
  let timer: NodeJS.Timeout | undefined;
  /** The first message's signal, watched while its batch waits (removed at flush: signals are shared). */
  let watched: AbortSignal | undefined;
  const onAbort = () => flush();

  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    watched?.removeEventListener("abort", onAbort);
    watched = undefined;
    const taken = waiting;
    waiting = [];
    const batch: Waiting[] = [];
    for (const entry of taken) {
      if (entry.signal.aborted) entry.resolve(undefined);
      else batch.push(entry);
    }
    if (batch.length === 0) return;
    const signal = signalOf(batch);
    run(
      batch.map((entry) => entry.delivery),
      signal,
    ).then(
      (results) => {
        // A soft timeout of one message timed the batch out: the handler was told to stop for all
        // of them, so whatever it returned, each message is a HandlerTimeout (retried).
        const timedOut = signal.aborted && (signal.reason as Error | undefined)?.name === "HandlerTimeout" ? failed(signal.reason) : undefined;
        batch.forEach((entry, i) => {
          entry.resolve(timedOut ?? results[i]);
        });
      },
      (error: unknown) => {
        for (const entry of batch) entry.reject(error);
      },
    );
  };

  const next: Next = (delivery, signal) =>
    new Promise<StepResult>((resolve, reject) => {
      waiting.push({ delivery, signal, resolve, reject });
      if (waiting.length >= fullAt) flush();
      else if (waiting.length === 1) {
        timer = setTimeout(flush, maxWaitMs);
        // Given up while waiting (shutdown deadline): leave now, not at the end of the window.
        if (!signal.aborted) {
          watched = signal;
          signal.addEventListener("abort", onAbort, { once: true });
        }
      }
    });
  // flush(): fetching stopped (graceful shutdown), nothing more can join: run what waits now.
  return Object.assign(next, { flush });
}

/** One signal for the batch: the shared one when all are the same (the usual case), else any. */
function signalOf(batch: readonly Waiting[]): AbortSignal {
  const first = (batch[0] as Waiting).signal;
  const distinct = new Set<AbortSignal>();
  for (const entry of batch) distinct.add(entry.signal);
  return distinct.size === 1 ? first : AbortSignal.any([...distinct]);
}
