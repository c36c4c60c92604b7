import type { PreparedHandler, DeliveryData } from "../pipeline/run-handler.js";
import { runAlone, runBatch } from "../pipeline/run-batch.js";
import type { RunResult } from "../pipeline/outcome.js";
import type { Runner } from "./Runner.js";

/** Runs handlers on the worker's own event loop: the default, best for IO-bound handlers. */
export class EventLoopRunner implements Runner {
  readonly model = "event-loop";

  constructor(readonly handlers: ReadonlyMap<string, PreparedHandler>) {}

  run(subscriptionId: string, data: DeliveryData, signal: AbortSignal): RunResult | Promise<RunResult> {
    const prepared = this.handlers.get(subscriptionId);
    if (!prepared) return Promise.reject(new Error(`no handler for subscription ${subscriptionId}`));
    return runAlone(prepared, data, signal);
  }

  runBatch(subscriptionId: string, batch: readonly DeliveryData[], signal: AbortSignal): Promise<RunResult[]> {
    const prepared = this.handlers.get(subscriptionId);
    if (!prepared) return Promise.reject(new Error(`no handler for subscription ${subscriptionId}`));
    return runBatch(prepared, batch, signal);
  }

  async close(): Promise<void> {}
}
