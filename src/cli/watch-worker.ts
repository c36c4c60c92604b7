import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../log/logger.js";
import { failAndExit } from "./fail.js";
import { loadApp } from "../app/load-app.js";
import { watchRoot, watchSourceFiles } from "./watch-files.js";

/** Set in the worker that `--watch` runs: it drains and exits when the watcher goes away. */
export const WATCHED_CHILD_ENV = "WQUEUE_WATCHED_CHILD";

const BIN = fileURLToPath(new URL("../../bin/wqueue.js", import.meta.url));

/** These arguments without `--watch`: the worker the watcher runs. */
export function withoutWatchFlag(argv: readonly string[]): string[] {
  return argv.filter((arg) => arg !== "--watch");
}

/**
 * `wqueue worker --watch`: runs the worker as a child process and, when a source file of the
 * project changes, stops it as SIGTERM does (in-flight messages finish and are acked, nothing is
 * taken meanwhile) and starts a fresh one, which imports the changed modules anew. One log line
 * per reload. A worker that exits on its own (e.g. a syntax error) is restarted on the next change.
 * SIGTERM/SIGINT stop the worker (a second one forces it) and exit with its code.
 */
export async function watchWorker(flags: { app: string }, logger: Logger, debug: boolean): Promise<void> {
  let root: string;
  try {
    root = watchRoot((await loadApp(flags.app)).file);
  } catch (error) {
    failAndExit(error, debug);
  }
  const argv = withoutWatchFlag(process.argv.slice(2));
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  let stopping = false;
  let reloading: Promise<void> | undefined;
  let again: string | undefined;

  const spawn = () => {
    // Its own process group: a terminal's Ctrl-C reaches it once, through here.
    const started = fork(BIN, argv, { stdio: "inherit", detached: true, env: { ...process.env, [WATCHED_CHILD_ENV]: "1" } });
    child = started;
    exited = new Promise((resolve) => {
      started.once("exit", (code, signal) => {
        if (child === started) child = undefined;
        if (!stopping && !reloading) {
          logger.warn({ code, signal }, `watch: the worker exited (${code ?? signal}); it restarts on the next change`);
        }
        resolve(code);
      });
    });
  };

  const reload = async (file: string) => {
    const startedAt = Date.now();
    const running = child;
    running?.kill("SIGTERM");
    const code = running ? await exited : null;
    if (stopping) return;
    spawn();
    const drained = running ? `drained the worker (exit ${code}) in ${Date.now() - startedAt} ms` : "the worker was not running";
    logger.info({ changed: file }, `watch: ${file} changed; ${drained}, restarted`);
  };

  const onChange = (file: string) => {
    if (stopping) return;
    if (reloading) {
      again = file; // one more reload once this one is done
      return;
    }
    reloading = reload(file).finally(() => {
      reloading = undefined;
      const next = again;
      again = undefined;
      if (next !== undefined) onChange(next);
    });
  };

  const stopWatching = watchSourceFiles(root, onChange);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    stopping = true;
    stopWatching();
    child?.kill(signals > 2 ? "SIGKILL" : signal);
    if (signals > 1) return;
    void (reloading ?? Promise.resolve())
      .then(() => exited)
      .then((code) => process.exit(signals > 1 ? 130 : (code ?? 0)));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  logger.info({ watching: root }, `watch: restarting the worker when a source file under ${path.relative(process.cwd(), root) || "."} changes`);
  spawn();
}
