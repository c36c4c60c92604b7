import { connectFailure } from "./sdk-errors.js";

/** connect() gives up after this long, whatever the SDK's retries. */
export const CONNECT_TIMEOUT_MS = 8000;

/**
 * connect() of an AWS broker: one cheap listing call (`call`, on a client of its own with short
 * timeouts) that must be answered within CONNECT_TIMEOUT_MS. Throws what connectFailure() makes of
 * a failure, naming `what` ("sqs sqs://host:9324"); an answer that is an error of the service
 * itself (access denied to the listing) still proves the endpoint and the credentials work.
 */
export async function probeEndpoint(what: string, call: (signal: AbortSignal) => Promise<unknown>, destroy: () => void): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CONNECT_TIMEOUT_MS);
  try {
    await call(controller.signal);
  } catch (error) {
    const failure = connectFailure(error, what, controller.signal.aborted, CONNECT_TIMEOUT_MS);
    if (failure !== undefined) throw failure;
  } finally {
    clearTimeout(timer);
    destroy();
  }
}
