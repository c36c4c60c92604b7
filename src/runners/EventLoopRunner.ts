import { type PreparedHandler, runHandler, type DeliveryData } from "../pipeline/run-handler.js";
import type { RunResult } from "../pipeline/outcome.js";
import type { Runner } from "./Runner.js";

/** Runs handlers on the worker's own event loop: the default, best for IO-bound handlers. */
export class EventLoopRunner implements Runner {
  readonly model = "event-loop";

  constructor(readonly handlers: ReadonlyMap<string, PreparedHandler>) {}

  run(subscriptionId: string, data: DeliveryData, signal: AbortSignal): RunResult | Promise<RunResult> {
    const prepared = this.handlers.get(subscriptionId);
    if (!prepared) return Promise.reject(new Error(`no handler for subscription ${subscriptionId}`));
    return runHandler(prepared, data, signal);
  }

  async close(): Promise<void> {}
}
