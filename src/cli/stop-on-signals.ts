import type { Logger } from "../log/logger.js";
import type { Worker } from "../worker/Worker.js";
import { failAndExit } from "./fail.js";

/**
 * SIGTERM / SIGINT stop the worker, installed before it starts so a signal during start-up drains
 * too. One stop whatever the signals: the first drains, a second forces it (in-flight messages go
 * back at once); either way the exit waits until messages are given back, then `cleanup` runs and
 * the process exits 0, or 130 when forced. Returns the handler, for other reasons to stop.
 */
export function stopOnSignals(worker: Worker, cleanup: () => Promise<void>, logger: Logger, debug: boolean): (signal: NodeJS.Signals) => void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn(`${signal} again: forcing stop`);
      worker.forceStop().catch(() => undefined); // the first signal's stop reports a failure
      return;
    }
    logger.info(`${signal}: draining (send again to force)`);
    worker.stop().then(
      () => cleanup().then(() => process.exit(signals > 1 ? 130 : 0)),
      (error: unknown) => failAndExit(error, debug),
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return onSignal;
}
