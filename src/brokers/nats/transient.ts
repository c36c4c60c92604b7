import { JetStreamApiError } from "@nats-io/jetstream";

/** JetStream's "temporarily unavailable" answers: a server (re)starting or electing a leader. */
const TEMPORARY_API_CODES = new Set([10008 /* JetStream system temporarily unavailable */, 10023 /* insufficient resources */]);

/**
 * Whether an error of a JetStream call is worth retrying as it is: no answer in time, nothing
 * answering (the client calls that "jetstream is not enabled"; also what a server that is still
 * recovering its streams says), a connection lost or not yet back. Not: an answer that says no
 * (a limit, a permission, a bad name), a closed client, or wqueue's own configuration errors.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return TEMPORARY_API_CODES.has(error.code);
  const name = (error as Error | undefined)?.name;
  return (
    name === "TimeoutError" ||
    name === "JetStreamNotEnabled" ||
    name === "NoRespondersError" ||
    name === "RequestError" ||
    name === "ConnectionError" ||
    name === "DrainingConnectionError" ||
    name === "JetStreamStatusError" ||
    name === "JetStreamError"
  );
}
