import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * How a separate OS process opens the broker under test, for the cases that kill a consumer for
 * real (a SIGKILLed worker closes nothing: only what the broker keeps can bring its messages back).
 */
export interface ChildBroker {
  /** The argument `open` gets, usually the broker URL; read when the case runs (after beforeAll). */
  arg: () => string;
  /**
   * A module (file path or URL) whose export `export` (default "open") takes `arg` and returns a
   * Broker, connected or not. Default: wqueue's own URL registry, so `arg` is a broker URL.
   * The child runs under `node --import tsx`, so a .ts module works.
   */
  module?: string | URL;
  export?: string;
}

/** What the child does before it waits to be killed (see child-consumer-entry.ts). */
export type ChildJob = { queue: string; timeoutMs: number; onePerPartition?: boolean } & (
  | { mode: "hold"; ack: number; hold: number }
  | { mode: "nack-delay"; delayMs: number }
);
/** The job and how to open the broker: the child's one argument, as JSON. */
export type ChildTask = ChildJob & { arg: string; module?: string; export?: string };

export interface ChildMessage {
  id: string;
  body: string;
  attempt: number;
}
export interface HoldReport {
  acked: ChildMessage[];
  held: ChildMessage[];
  /** When the child had settled what it settles (its clock: the same machine). */
  at: number;
}
export interface NackReport {
  nacked: ChildMessage;
  /** Just before the nack was sent, and once it resolved. */
  before: number;
  at: number;
}

const entry = (() => {
  const built = fileURLToPath(new URL("./child-consumer-entry.js", import.meta.url));
  return existsSync(built) ? built : fileURLToPath(new URL("./child-consumer-entry.ts", import.meta.url));
})();

/** A child consumer process: its report line once it did its task, and a SIGKILL that waits for the exit. */
export class ChildConsumer {
  readonly #process: ChildProcess;
  readonly #exited: Promise<NodeJS.Signals | number | null>;
  #stderr = "";

  constructor(broker: ChildBroker, job: ChildJob) {
    const module = broker.module instanceof URL ? broker.module.href : broker.module;
    const full: ChildTask = { ...job, arg: broker.arg(), module, export: broker.export };
    this.#process = spawn(process.execPath, ["--import", "tsx", entry, JSON.stringify(full)], { stdio: ["ignore", "pipe", "pipe"] });
    this.#process.stderr?.on("data", (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    this.#exited = new Promise((resolve) => this.#process.once("exit", (code, signal) => resolve(signal ?? code)));
  }

  /** The child's report, or a failure (with its stderr) if it exits or `timeoutMs` passes first. */
  report<T>(timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`child consumer reported nothing in ${timeoutMs} ms: ${this.#stderr}`)), timeoutMs);
      this.#process.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const newline = out.indexOf("\n");
        if (newline < 0) return;
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, newline)) as T);
      });
      void this.#exited.then((how) => {
        clearTimeout(timer);
        reject(new Error(`child consumer exited (${how}) before reporting: ${this.#stderr}`));
      });
    });
  }

  /** SIGKILL, resolved once the process is gone. Idempotent. */
  async kill(): Promise<void> {
    if (this.#process.exitCode === null && this.#process.signalCode === null) this.#process.kill("SIGKILL");
    await this.#exited;
  }
}
