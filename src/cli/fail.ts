import { AppLoadError, BrokerUnreachableError, ConfigError } from "../errors.js";

/** The broker refused what the user sent (too large, not allowed): one line, exit 1. */
export class RefusedError extends Error {
  override name = "RefusedError";
}

/** Errors a user causes (bad module, bad URL, broker down): one clear line, no stack trace, exit 2. */
const USER_ERRORS = new Set([AppLoadError.name, BrokerUnreachableError.name, ConfigError.name, "CommanderError"]);
const ONE_LINE = new Set([...USER_ERRORS, RefusedError.name]);

/**
 * Prints an error as `wqueue: <message>` and exits non-zero. The stack is shown only with
 * `--log-level debug` (or trace), or for errors that are bugs rather than misconfiguration.
 */
export function failAndExit(error: unknown, debug: boolean): never {
  const err = error instanceof Error ? error : new Error(String(error));
  const line = `wqueue: ${err.message}`;
  if (debug || !ONE_LINE.has(err.name)) process.stderr.write(`${line}\n${err.stack ?? ""}\n`);
  else process.stderr.write(`${line}\n`);
  process.exit(USER_ERRORS.has(err.name) ? 2 : 1);
}
