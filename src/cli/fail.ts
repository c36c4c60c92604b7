import { AppLoadError, BrokerUnreachableError, ConfigError } from "../errors.js";

/** Errors a user causes (bad module, bad URL, broker down): one clear line, no stack trace. */
const USER_ERRORS = new Set([AppLoadError.name, BrokerUnreachableError.name, ConfigError.name, "CommanderError"]);

/**
 * Prints an error as `wqueue: <message>` and exits non-zero. The stack is shown only with
 * `--log-level debug` (or trace), or for errors that are bugs rather than misconfiguration.
 */
export function failAndExit(error: unknown, debug: boolean): never {
  const err = error instanceof Error ? error : new Error(String(error));
  const line = `wqueue: ${err.message}`;
  if (debug || !USER_ERRORS.has(err.name)) process.stderr.write(`${line}\n${err.stack ?? ""}\n`);
  else process.stderr.write(`${line}\n`);
  process.exit(USER_ERRORS.has(err.name) ? 2 : 1);
}
