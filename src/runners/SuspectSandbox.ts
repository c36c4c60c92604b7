import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { AppLoadError, serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { RunResult } from "../pipeline/outcome.js";
import { failed } from "../pipeline/outcome.js";
import type { DeliveryData } from "../pipeline/run-handler.js";
import { runnerEntry } from "./entry-point.js";
import { HandlerAbandoned, HandlerTimeout } from "./errors.js";
import type { RunnerHandler } from "./create-runner.js";
import { SANDBOX_SETUP_ENV, type SandboxReply, type SandboxSetup } from "./sandbox-protocol.js";

/**
 * What a suspect's run in the sandbox came to: the handler's own outcome, or the sandbox process
 * died under it (the handler SIGKILLed, `process.exit()`ed or crashed it), or no sandbox could
 * be had (the app module did not load in a child process).
 */
export type SandboxResult = { kind: "done"; outcome: RunResult } | { kind: "died"; why: string } | { kind: "unavailable"; why: string };

export interface SuspectSandboxOptions {
  /** The app module as the CLI was given it: the child imports it to find the handlers. */
  appModule: string;
  cwd?: string;
  /** Subscription id -> its prepared settings (the handler itself stays here; the child imports its own). */
  subscriptions: ReadonlyMap<string, RunnerHandler>;
  logger: Logger;
  /** After an abort, how long the handler gets to return before the child is killed. Default 1000 ms. */
  abortGraceMs?: number;
}

/**
 * Runs *suspects* (messages delivered more often than their `maxAttempts` without a recorded
 * result, so each time a worker died while it held them) in a child process of their own, one
 * at a time. A handler that SIGKILLs or `process.exit()`s its process there takes only the
 * sandbox down: the worker, which keeps the delivery and its lease, learns that this message,
 * and nothing prefetched beside it, killed its process, and can give a verdict about that one
 * message. A suspect that succeeds here is simply acked.
 *
 * The child imports the app module like a worker thread does (handlers are found by subscription
 * id), holds no broker connection, and is kept for the next suspect until it dies or close().
 */
export class SuspectSandbox {
  readonly #options: SuspectSandboxOptions;
  readonly #setup: SandboxSetup;
  #child: ChildProcess | undefined;
  #ready: Promise<ChildProcess> | undefined;
  /** One suspect at a time: the chain of runs. */
  #queue: Promise<unknown> = Promise.resolve();
  #nextTask = 1;
  #closed = false;

  constructor(options: SuspectSandboxOptions) {
    this.#options = options;
    const subscriptions: SandboxSetup["subscriptions"] = {};
    for (const [id, prepared] of options.subscriptions) {
      subscriptions[id] = { format: prepared.format, ackPolicy: prepared.ackPolicy };
    }
    this.#setup = { appModule: options.appModule, cwd: options.cwd ?? process.cwd(), subscriptions };
  }

  /** Runs one suspect once the suspects before it are done. Never rejects. */
  run(subscriptionId: string, data: DeliveryData, signal: AbortSignal): Promise<SandboxResult> {
    const result = this.#queue.then(() => this.#runNow(subscriptionId, data, signal));
    this.#queue = result;
    return result;
  }

  /** Kills the child; runs still waiting resolve as abandoned. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    this.#ready = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
  }

  async #runNow(sub: string, data: DeliveryData, signal: AbortSignal): Promise<SandboxResult> {
    const prepared = this.#options.subscriptions.get(sub);
    if (this.#closed || signal.aborted || !prepared) return abandoned("the worker gave the message up before it ran");
    let child: ChildProcess;
    try {
      child = await this.#spawn();
    } catch (error) {
      // Closing kills a sandbox that is still starting: that says nothing about the message.
      if (this.#closed || signal.aborted) return abandoned("the worker gave the message up before it ran");
      return { kind: "unavailable", why: (error as Error).message };
    }
    if (this.#closed || signal.aborted) return abandoned("the worker gave the message up before it ran");
    const task = this.#nextTask++;
    return new Promise<SandboxResult>((resolve) => {
      const timers: NodeJS.Timeout[] = [];
      const finish = (result: SandboxResult) => {
        child.off("message", onMessage);
        child.off("exit", onExit);
        signal.removeEventListener("abort", onAbort);
        for (const timer of timers) clearTimeout(timer);
        resolve(result);
      };
      const onMessage = (reply: SandboxReply) => {
        if (reply.kind === "done" && reply.task === task) finish({ kind: "done", outcome: reply.outcome });
      };
      const onExit = (code: number | null, killedBy: NodeJS.Signals | null) => {
        if (this.#child === child) this.#child = undefined;
        // close() kills the child at the end of a shutdown: not the handler's doing.
        if (this.#closed) return finish(abandoned("the worker closed the suspect sandbox while the message ran"));
        finish({ kind: "died", why: killedBy ? `killed by ${killedBy}` : `exited with code ${code}` });
      };
      // Our own kill (timeout, abort): the message did not kill anything, whatever the exit says.
      const killFor = (outcome: RunResult) => {
        child.off("exit", onExit);
        if (this.#child === child) this.#child = undefined;
        child.kill("SIGKILL");
        finish({ kind: "done", outcome });
      };
      const onAbort = () => {
        child.send({ kind: "abort", task, reason: serializeError(signal.reason) });
        timers.push(setTimeout(() => killFor(abandoned("its signal aborted and it did not return").outcome), this.#options.abortGraceMs ?? 1000));
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
      signal.addEventListener("abort", onAbort, { once: true });
      if (prepared.hardTimeoutMs !== undefined) {
        const error = new HandlerTimeout(`handler still running after ${prepared.hardTimeoutMs} ms in the suspect sandbox; the sandbox was killed`);
        timers.push(setTimeout(() => killFor(failed(error)), prepared.hardTimeoutMs));
      }
      child.send({ kind: "run", task, sub, data: { id: data.id, queue: data.queue, body: data.body, headers: data.headers, key: data.key, attempt: data.attempt } });
    });
  }

  /** The running child, or a new one once it has loaded the app. */
  #spawn(): Promise<ChildProcess> {
    if (this.#ready && this.#child) return this.#ready;
    const entry = runnerEntry("sandbox-entry");
    const child = fork(fileURLToPath(entry.filename), [], {
      execArgv: entry.execArgv ?? process.execArgv,
      serialization: "advanced",
      env: { ...process.env, [SANDBOX_SETUP_ENV]: JSON.stringify(this.#setup) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.#child = child;
    this.#options.logger.info({ sandboxPid: child.pid }, "started the suspect sandbox");
    const ready = new Promise<ChildProcess>((resolve, reject) => {
      const onExit = (code: number | null, killedBy: NodeJS.Signals | null) =>
        reject(new AppLoadError(`the suspect sandbox ${killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`} before the app loaded`));
      child.once("exit", onExit);
      child.once("message", (reply: SandboxReply) => {
        child.off("exit", onExit);
        if (reply.kind === "ready") resolve(child);
        else reject(new AppLoadError(`the suspect sandbox could not load ${this.#setup.appModule}: ${reply.kind === "load-failed" ? reply.error.message : reply.kind}`));
      });
    });
    this.#ready = ready;
    ready.catch(() => {
      if (this.#child === child) this.#child = undefined;
      this.#ready = undefined;
    });
    return ready;
  }
}

/** The outcome of a suspect the worker gave up on (shutdown, timeout): back to the broker, counted as tried. */
export function abandoned(why: string): { kind: "done"; outcome: RunResult } {
  const error = new HandlerAbandoned(why);
  return { kind: "done", outcome: { type: "retry", delayMs: 0, error: serializeError(error) } };
}
