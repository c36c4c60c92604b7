/**
 * Error classes of WQueue. Each sets `name`, so it stays recognisable after crossing a thread or
 * process boundary (where only name, message and stack survive structured cloning).
 */

/** Wrong configuration: unknown scheme, malformed URL, impossible option. Exit without stack. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The broker did not answer. The message always carries the redacted URL. */
export class BrokerUnreachableError extends Error {
  override name = "BrokerUnreachableError";
}

/** The app module could not be found, loaded, or holds no WQueue app / no subscriptions. */
export class AppLoadError extends Error {
  override name = "AppLoadError";
}

/** A payload that the subscription's decoder cannot read: dead-lettered at once, never retried. */
export class DecodeError extends Error {
  override name = "DecodeError";
}

/** Throw from a handler to retry after a given delay instead of the backoff schedule. */
export class RetryLater extends Error {
  override name = "RetryLater";
  constructor(
    readonly delayMs: number,
    message = `retry requested in ${delayMs} ms`,
  ) {
    super(message);
  }
}

/**
 * Throw from a handler when an upstream said "too many requests" (an HTTP 429): the message goes
 * back without counting an attempt (where the broker can: see Delivery.nack) and its queue pauses
 * for `pauseMs` on every worker of the app (through the coordination store; on this worker only
 * without one). The message is visible again when the pause ends.
 */
export class RateLimited extends Error {
  override name = "RateLimited";
  constructor(
    readonly pauseMs: number,
    message = `upstream rate limit: queue paused for ${pauseMs} ms`,
  ) {
    super(message);
  }
}

/** Throw from a handler to dead-letter the message now, whatever attempts are left. */
export class DeadLetterNow extends Error {
  override name = "DeadLetterNow";
}

/** Plain-data form of an error, for dead letters and for crossing thread boundaries. */
export function serializeError(error: unknown): { name: string; message: string; stack?: string } {
  if (error instanceof Error) {
    const stack = error.stack?.split("\n").slice(0, 12).map(shortenFrame).join("\n");
    return stack === undefined
      ? { name: error.name, message: error.message }
      : { name: error.name, message: error.message, stack };
  }
  return { name: "NonError", message: String(error) };
}

/**
 * A module that tsx hands to Node as a `data:` URL (a CommonJS file imported from an ES module)
 * puts the whole compiled module in every stack frame, kilobytes each. Such a frame is shown as the
 * file it came from, marked `tsx-compiled:` because its line and column are in the compiled code.
 */
function shortenFrame(frame: string): string {
  const at = frame.indexOf("data:");
  if (at === -1 || frame.length < 200) return frame;
  const tail = /:\d+:\d+\)?$/.exec(frame)?.[0] ?? (frame.endsWith(")") ? ")" : "");
  const url = frame.slice(at, frame.length - tail.length);
  const fileAt = url.lastIndexOf("?filePath=");
  const shown =
    fileAt === -1
      ? `${url.slice(0, 40)}...`
      : `tsx-compiled:${decodeSafely(url.slice(fileAt + "?filePath=".length)).replace(/\?.*$/, "")}`;
  return frame.slice(0, at) + shown + tail;
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
