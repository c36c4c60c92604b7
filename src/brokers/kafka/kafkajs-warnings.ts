/**
 * kafkajs 2.2 (its last release) schedules a timer at a negative delay whenever a connection's
 * request queue is not throttled (requestQueue/index.js, `throttledUntil - Date.now()` with
 * throttledUntil = -1). Node 24 reports each as a TimeoutNegativeWarning on stderr, several per
 * worker; the timer itself is harmless (Node runs it after 1 ms). This drops exactly that
 * warning: a TimeoutNegativeWarning raised from a kafkajs frame. Every other warning, and a
 * TimeoutNegativeWarning of the application's own, is emitted as before.
 */
let installed = false;

export function silenceKafkajsNegativeTimeouts(): void {
  if (installed) return;
  installed = true;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]): void {
    if (isKafkajsNegativeTimeout(warning, rest[0])) return;
    (emitWarning as (...args: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
}

function isKafkajsNegativeTimeout(warning: string | Error, typeOrOptions: unknown): boolean {
  const type =
    warning instanceof Error
      ? warning.name
      : typeof typeOrOptions === "string"
        ? typeOrOptions
        : (typeOrOptions as { type?: string } | undefined)?.type;
  if (type !== "TimeoutNegativeWarning") return false;
  // Only now, and rarely, is a stack taken: the call that set the timer is on it.
  return /[\\/]node_modules[\\/]kafkajs[\\/]/.test(new Error().stack ?? "");
}
