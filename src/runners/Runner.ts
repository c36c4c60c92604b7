import type { DeliveryData } from "../pipeline/run-handler.js";
import type { RunResult } from "../pipeline/outcome.js";

/**
 * A concurrency model: where and how a handler runs. The dispatcher keeps the delivery (and so the
 * broker connection and the ack) in its own thread and gives the runner only the message's data;
 * the runner answers with a RunResult: an Outcome, or a raw failure (the handler threw, its thread
 * crashed or timed out) that the dispatch chain's retry step maps. It holds no policy of its own.
 * `run` never rejects for a handler's failure.
 */
export interface Runner {
  /** "event-loop", "threads", "processes": shown in the ready line. */
  readonly model: string;
  /**
   * The most messages the runner executes at once, when it has such a limit (threads x tasks per
   * thread). The worker should fetch no more than this: a message fetched beyond it only waits,
   * hidden from other consumers. Undefined: no limit of its own (the event loop).
   */
  readonly capacity?: number;
  /**
   * Optional: resolves once the runner can run every subscription (threads have loaded the app
   * module), rejects with an AppLoadError when it cannot. Call it before the first message.
   */
  start?(): Promise<void>;
  /** May answer synchronously (the event loop, for a sync handler): callers handle both. */
  run(subscriptionId: string, data: DeliveryData, signal: AbortSignal): RunResult | Promise<RunResult>;
  /**
   * A batch subscription's batch, in one handler call (pipeline/run-batch.ts): one result per
   * message, in order. A failure of the run itself (a crashed thread) fails each message.
   */
  runBatch?(subscriptionId: string, batch: readonly DeliveryData[], signal: AbortSignal): Promise<RunResult[]>;
  close(): Promise<void>;
}
