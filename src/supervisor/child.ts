import type { Logger } from "../log/logger.js";

/** Set by the supervisor in each child's environment: 0, 1, ... (kept across restarts). */
export const CHILD_INDEX_ENV = "WQUEUE_CHILD_INDEX";

/** This process's index among the supervisor's children, or undefined when not a supervised child. */
export function childIndex(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env[CHILD_INDEX_ENV];
  if (value === undefined || value === "") return undefined;
  const index = Number(value);
  return Number.isInteger(index) && index >= 0 ? index : undefined;
}

/** In a supervised child, a logger whose every line carries `child: <index>`; else the logger itself. */
export function childLogger(logger: Logger, env: NodeJS.ProcessEnv = process.env): Logger {
  const index = childIndex(env);
  return index === undefined ? logger : logger.child({ child: index });
}

/** The worker arguments for a child: these arguments without `--processes N` / `--processes=N`. */
export function childArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--processes") {
      i += 1; // and its value
      continue;
    }
    if (arg.startsWith("--processes=")) continue;
    out.push(arg);
  }
  return out;
}

/**
 * In a supervised child: calls `stop` once the supervisor is gone (the fork IPC channel closed, as
 * when the supervisor was SIGKILLed), so no worker runs on alone, unsupervised. A channel that
 * closed before this call (the supervisor died while the child loaded its app) counts too: the
 * 'disconnect' event has been missed then. `supervised`: this process has such a parent (a
 * `--processes` child by default; the CLI also passes it for the worker that `--watch` runs).
 */
export function stopWhenSupervisorGone(stop: () => void, supervised = childIndex() !== undefined): void {
  if (!supervised || typeof process.send !== "function") return;
  if (!process.connected) {
    stop();
    return;
  }
  process.once("disconnect", stop);
}
