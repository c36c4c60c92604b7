import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { CHILD_INDEX_ENV } from "./child.js";

export interface SuperviseOptions {
  /** Children to run, each a full worker with its own broker connections (competing consumers). */
  processes: number;
  /** The worker arguments of a child, e.g. ["worker", "-a", "app.ts", "--broker", url], without --processes. */
  argv: string[];
  logger: Logger;
  /** The CLI script children run; default this package's bin/wqueue.js. */
  bin?: string;
  /** Environment of the children (plus WQUEUE_CHILD_INDEX); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Restart delays: initialMs doubling per crash up to maxMs; reset once a child stays up resetAfterMs. */
  backoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number };
  /** Aborting it stops the children as a SIGTERM would (for callers that own the signals). */
  signal?: AbortSignal;
  /** Listen to SIGTERM and SIGINT on this process (default true). */
  handleSignals?: boolean;
  /** Told about every child started (and restarted), e.g. to ask it for its stats over IPC. */
  onChild?: (index: number, child: ChildProcess) => void;
}

const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 };

/** The CLI exits 2 for a user error (bad app module, bad URL, broker down at start): restarting cannot help. */
const USER_ERROR_EXIT = 2;

const DEFAULT_BIN = fileURLToPath(new URL("../../bin/wqueue.js", import.meta.url));

interface Slot {
  readonly index: number;
  child: ChildProcess | undefined;
  startedAt: number;
  crashes: number;
  restart: NodeJS.Timeout | undefined;
}

/**
 * Runs `processes` copies of the worker as child processes and keeps them running:
 *
 * - a child that exits on its own is restarted after an exponential backoff (initialMs, doubling,
 *   capped at maxMs; the count resets once a child has stayed up resetAfterMs); a child that exits
 *   with 2 (a user error at start-up) stops everything, since every restart would fail the same way;
 * - the first SIGTERM/SIGINT is forwarded to every child, which drains and exits; the second is
 *   forwarded again (the worker forces its stop on a second signal); a third sends SIGKILL;
 * - resolves with the exit code: 0 when every child exited 0 after the stop signal, 130 when the
 *   stop was forced, 2 after a start-up error, 1 otherwise.
 *
 * Children run in their own process group, so a terminal's Ctrl-C reaches them once, through here.
 * Each child's environment carries WQUEUE_CHILD_INDEX (see childIndex()).
 */
export function superviseProcesses(options: SuperviseOptions): Promise<number> {
  if (!(Number.isInteger(options.processes) && options.processes > 0)) {
    return Promise.reject(new ConfigError(`processes must be a whole number > 0, got ${options.processes}`));
  }
  return new Supervisor(options).run();
}

class Supervisor {
  readonly #options: SuperviseOptions;
  readonly #backoff: typeof DEFAULT_BACKOFF;
  readonly #logger: Logger;
  readonly #slots: Slot[];
  #stopping: NodeJS.Signals | undefined;
  #signals = 0;
  #failed = false;
  #unclean = false;
  #done: ((code: number) => void) | undefined;
  readonly #onSignal = (signal: NodeJS.Signals) => this.#stop(signal);

  constructor(options: SuperviseOptions) {
    this.#options = options;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#logger = options.logger;
    this.#slots = Array.from({ length: options.processes }, (_, index) => ({
      index,
      child: undefined,
      startedAt: 0,
      crashes: 0,
      restart: undefined,
    }));
  }

  run(): Promise<number> {
    const finished = new Promise<number>((resolve) => {
      this.#done = resolve;
    });
    if (this.#options.handleSignals !== false) {
      process.on("SIGTERM", this.#onSignal);
      process.on("SIGINT", this.#onSignal);
    }
    const { signal } = this.#options;
    signal?.addEventListener("abort", () => this.#stop("SIGTERM"), { once: true });
    this.#logger.info({ processes: this.#slots.length }, `supervisor: starting ${this.#slots.length} worker processes`);
    for (const slot of this.#slots) this.#spawn(slot);
    if (signal?.aborted) this.#stop("SIGTERM");
    return finished;
  }

  #spawn(slot: Slot): void {
    slot.restart = undefined;
    slot.startedAt = Date.now();
    const child = fork(this.#options.bin ?? DEFAULT_BIN, this.#options.argv, {
      env: { ...(this.#options.env ?? process.env), [CHILD_INDEX_ENV]: String(slot.index) },
      stdio: "inherit",
      detached: true,
    });
    slot.child = child;
    this.#options.onChild?.(slot.index, child);
    this.#logger.info({ child: slot.index, pid: child.pid }, `supervisor: child ${slot.index} started (pid ${child.pid})`);
    let exited = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exited) return;
      exited = true;
      this.#onExit(slot, child, code, signal);
    };
    child.once("exit", onExit);
    child.once("error", (error) => {
      this.#logger.error({ child: slot.index, err: { name: error.name, message: error.message } }, "supervisor: could not run a child");
      // 'exit' may never come for a child that could not be spawned.
      if (child.pid === undefined) onExit(1, null);
    });
  }

  #onExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child === child) slot.child = undefined;
    const how = code !== null ? `code ${code}` : `signal ${signal}`;
    const fields = { child: slot.index, pid: child.pid, code, signal };
    if (this.#stopping) {
      const clean = code === 0 || signal === this.#stopping;
      if (!clean) this.#unclean = true;
      this.#logger.info(fields, `supervisor: child ${slot.index} exited (${how})`);
      this.#maybeFinish();
      return;
    }
    if (code === USER_ERROR_EXIT) {
      this.#logger.error(fields, `supervisor: child ${slot.index} failed at start-up (exit 2: see its error above); stopping`);
      this.#failed = true;
      this.#stop("SIGTERM");
      return;
    }
    const upMs = Date.now() - slot.startedAt;
    if (upMs >= this.#backoff.resetAfterMs) slot.crashes = 0;
    slot.crashes += 1;
    const delayMs = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (slot.crashes - 1));
    this.#logger.warn(
      { ...fields, upMs, restartInMs: delayMs },
      `supervisor: child ${slot.index} exited (${how}) after ${(upMs / 1000).toFixed(1)} s; restarting in ${delayMs} ms`,
    );
    slot.restart = setTimeout(() => this.#spawn(slot), delayMs);
  }

  #stop(signal: NodeJS.Signals): void {
    this.#signals += 1;
    const live = this.#slots.flatMap((slot) => (slot.child ? [slot.child] : []));
    if (this.#signals === 1) {
      this.#stopping = signal;
      for (const slot of this.#slots) {
        clearTimeout(slot.restart);
        slot.restart = undefined;
      }
      this.#logger.info({ children: live.length }, `supervisor: ${signal}: stopping ${live.length} children (send again to force)`);
      for (const child of live) child.kill(signal);
      this.#maybeFinish();
    } else if (this.#signals === 2) {
      this.#unclean = true;
      this.#logger.warn(`supervisor: ${signal} again: forcing ${live.length} children to stop`);
      for (const child of live) child.kill(this.#stopping ?? signal);
    } else {
      this.#logger.warn(`supervisor: ${signal} a third time: killing ${live.length} children`);
      for (const child of live) child.kill("SIGKILL");
    }
  }

  #maybeFinish(): void {
    if (!this.#stopping || this.#slots.some((slot) => slot.child !== undefined)) return;
    if (this.#options.handleSignals !== false) {
      process.off("SIGTERM", this.#onSignal);
      process.off("SIGINT", this.#onSignal);
    }
    const code = this.#failed ? USER_ERROR_EXIT : this.#signals > 1 ? 130 : this.#unclean ? 1 : 0;
    this.#logger.info({ code }, `supervisor: all children stopped; exit code ${code}`);
    this.#done?.(code);
    this.#done = undefined;
  }
}
