import type { RunResult } from "../pipeline/outcome.js";
import type { DeliveryData } from "../pipeline/run-handler.js";
import type { SerializedError, ThreadSubscriptionSettings } from "./thread-protocol.js";

/**
 * What crosses between a SuspectSandbox and its child process (IPC with `serialization:
 * "advanced"`, so message bodies travel as bytes).
 */

/** Environment of the child: JSON of SandboxSetup. */
export const SANDBOX_SETUP_ENV = "WQUEUE_SANDBOX_SETUP";

export interface SandboxSetup {
  appModule: string;
  cwd: string;
  subscriptions: Record<string, ThreadSubscriptionSettings>;
}

/** Parent -> child: run one message. */
export interface SandboxRun {
  kind: "run";
  task: number;
  sub: string;
  data: DeliveryData;
}

/** Parent -> child: the message's signal aborted (timeout, shutdown deadline). */
export interface SandboxAbort {
  kind: "abort";
  task: number;
  reason: SerializedError;
}

/** Child -> parent: the app loaded (or not), then one reply per run. */
export type SandboxReply =
  | { kind: "ready"; ids: string[] }
  | { kind: "load-failed"; error: SerializedError }
  | { kind: "done"; task: number; outcome: RunResult };
