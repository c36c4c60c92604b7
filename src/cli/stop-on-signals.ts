import type { Logger } from "../log/logger.js";
import type { Worker } from "../worker/Worker.js";
import { failAndExit } from "./fail.js";

/**
 * SIGTERM / SIGINT stop the worker, installed before it starts so a signal during start-up drains
 * too. One stop whatever asks for it: the first signal drains, a second forces it (in-flight
 * messages go back at once); either way the exit waits until messages are given back, then
 * `cleanup` runs and the process exits 0, or 130 when forced. An error after start that cannot
 * heal by retrying (`worker.fatal`, e.g. a name the broker refuses) stops it the same way, then
 * prints one line and exits 2. Returns the signal handler, for other reasons to stop.
 */
export function stopOnSignals(worker: Worker, cleanup: () => Promise<void>, logger: Logger, debug: boolean): (signal: NodeJS.Signals) => void {
  let signals = 0;
  let stopping = false;
  const stopThen = (exit: (stopError?: unknown) => void) => {
    if (stopping) return;
    stopping = true;
    worker
      .stop()
      .then(cleanup)
      .then(() => exit(), exit);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn(`${signal} again: forcing stop`);
      worker.forceStop().catch(() => undefined); // the stop under way reports a failure
      return;
    }
    logger.info(`${signal}: draining (send again to force)`);
    stopThen((stopError) => (stopError === undefined ? process.exit(signals > 1 ? 130 : 0) : failAndExit(stopError, debug)));
  };
  void worker.fatal.then((error) => stopThen(() => failAndExit(error, debug)));
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return onSignal;
}
