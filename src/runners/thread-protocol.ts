import type { AckPolicy, BodyFormat } from "../app/types.js";
import type { DeliveryData } from "../pipeline/run-handler.js";
import type { RunResult } from "../pipeline/outcome.js";

/**
 * What crosses between a ThreadPoolRunner and its threads. Everything here is plain data
 * (structured clone); message bodies travel as transferred ArrayBuffers.
 */

/**
 * A subscription's resolved settings, plain data, sent to every thread. What cannot be cloned
 * (the handler, a schema's validate function) each thread takes from its own import of the app.
 */
export interface ThreadSubscriptionSettings {
  format: BodyFormat;
  ackPolicy?: AckPolicy;
}

/** `workerData` of every thread. */
export interface ThreadSetup {
  /** The app module as the CLI was given it (path, dotted path or package, `:export` allowed). */
  appModule: string;
  /** Directory the module spec is resolved from. */
  cwd: string;
  /** Subscription id -> settings; a thread runs only these. */
  subscriptions: Record<string, ThreadSubscriptionSettings>;
  /** BroadcastChannel name on which the runner sends `AbortNotice`s. */
  abortChannel: string;
}

/** One message to run. Carries the DeliveryData fields itself, so the thread passes it on as is. */
export interface RunTask extends DeliveryData {
  kind?: undefined;
  /** Runner-wide task number, for abort notices and start notes. */
  task: number;
  /** Subscription id. */
  sub: string;
  /** Set when the subscription has a hard timeout: the thread posts a StartedNote when it starts. */
  notify?: true;
  /** Set when the signal had aborted before the task was sent: message.signal starts aborted. */
  aborted?: SerializedError;
}

/** Asks a thread to load the app (if not done) and list the subscriptions it found. */
export interface ProbeTask {
  kind: "probe";
}

/** A batch subscription's batch: one handler call, bodies as views of one transferred buffer. */
export interface RunBatchTask {
  kind: "batch";
  task: number;
  sub: string;
  messages: DeliveryData[];
  notify?: true;
  aborted?: SerializedError;
}

export type ThreadTask = RunTask | RunBatchTask | ProbeTask;

export type ProbeReply = { kind: "probe"; ids: string[]; threadId: number } | { kind: "probe"; error: SerializedError };

export type ThreadReply = RunResult | RunResult[] | ProbeReply;

/** Broadcast by the runner when a signal aborts: the listed tasks' message.signal abort. */
export interface AbortNotice {
  tasks: number[];
  reason: SerializedError;
}

/** Key of the note a thread posts (through piscina's 'message' event) when a timed task starts. */
export const STARTED = "wqueueTaskStarted";
export type StartedNote = { [STARTED]: number };

export type SerializedError = { name: string; message: string; stack?: string };

/** Rebuilds an Error from its plain form, keeping name, message and stack. */
export function reviveError(data: SerializedError): Error {
  const error = new Error(data.message);
  error.name = data.name;
  if (data.stack !== undefined) error.stack = data.stack;
  return error;
}
