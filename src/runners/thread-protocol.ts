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
  /**
   * An Int32Array's buffer, shared by the runner and every thread (replacements too): a cell per
   * message in a thread, where the thread notes `Progress`. When a thread dies the runner reads
   * which of its messages had not started (given back) or had been acked (acked), since the
   * task's one reply is lost with the thread.
   */
  progress: SharedArrayBuffer;
}

/** What a thread has done with a message, in its progress cell. */
export const Progress = { queued: 0, started: 1, acked: 2, finished: 3 } as const;

/** One message of a RunManyTask. Carries the DeliveryData fields itself, so the thread passes it on as is. */
export interface RunItem extends DeliveryData {
  /** Runner-wide message number, for abort notices and start notes. */
  task: number;
  /** Subscription id. */
  sub: string;
  /** This message's cell in the progress array (`ThreadSetup.progress`). */
  slot: number;
  /** Set when the signal had aborted before the message was sent. */
  aborted?: SerializedError;
}

/**
 * Messages submitted in one turn of the runner's event loop, in one piscina task: one message each
 * way for all of them. The thread runs them one after another, in order, and answers a RunResult
 * per message, in order. Bodies are views of one transferred buffer. A message that waits behind
 * another in its task and is aborted before it starts is not run (HandlerAbandoned). A message
 * with a hard timeout travels alone, with `notify`.
 */
export interface RunManyTask {
  kind: "many";
  items: RunItem[];
  /** Set when the subscription has a hard timeout: the thread posts a StartedNote when it starts. */
  notify?: true;
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

export type ThreadTask = RunManyTask | RunBatchTask | ProbeTask;

export type ProbeReply = { kind: "probe"; ids: string[]; threadId: number } | { kind: "probe"; error: SerializedError };

export type ThreadReply = RunResult[] | ProbeReply;

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
