import { BrokerUnreachableError, ConfigError } from "../../errors.js";

/**
 * How AWS SDK v3 errors are told apart, for every AWS adapter (SQS, Kinesis): the SDK throws
 * service exceptions with a `name`, network failures with a Node `code` and no HTTP status.
 */
interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $fault?: "client" | "server";
  $metadata?: { httpStatusCode?: number };
}

const THROTTLED = new Set([
  "ThrottlingException",
  "RequestThrottled",
  "Throttling",
  "KmsThrottled",
  "KMSThrottlingException",
  "ProvisionedThroughputExceededException",
  "LimitExceededException",
]);
const AUTH_FAILED = new Set([
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
  "UnrecognizedClientException",
  "ExpiredToken",
  "ExpiredTokenException",
  "MissingAuthenticationToken",
  "InvalidSecurity",
  "IncompleteSignature",
]);

/** The error's name, or "" (for sets of service exception names). */
export function errorName(error: unknown): string {
  return (error as SdkError)?.name ?? "";
}

/** The request was cancelled through its abortSignal. */
export function isAbort(error: unknown): boolean {
  return errorName(error) === "AbortError";
}

/** The credentials were refused (not: no credentials found, which is the CredentialsProviderError). */
export function isAuthFailure(error: unknown): boolean {
  return AUTH_FAILED.has(errorName(error));
}

/** The service asked us to slow down (per-shard throughput, API rate limits, KMS). */
export function isThrottled(error: unknown): boolean {
  return THROTTLED.has(errorName(error));
}

/** No HTTP answer at all: refused, reset, timed out, DNS. The endpoint is down or unreachable. */
export function isNetworkError(error: unknown): boolean {
  const e = error as SdkError;
  return e?.$metadata?.httpStatusCode === undefined && !isAbort(error) && (e?.code !== undefined || e?.name === "TimeoutError");
}

/** Worth trying again after a pause: the endpoint is down, overloaded, throttling or failed itself. */
export function isTransient(error: unknown): boolean {
  const e = error as SdkError;
  if (isNetworkError(error)) return true;
  const status = e?.$metadata?.httpStatusCode ?? 0;
  return status >= 500 || e?.$fault === "server" || isThrottled(error);
}

/** One line for logs and errors: the SDK error's name and message, no request ids or stacks. */
export function describeAwsError(error: unknown): string {
  const e = error as SdkError;
  const name = e?.name ?? "Error";
  const message = e?.message ?? String(error);
  const detail = e?.code !== undefined && !message.includes(e.code) ? ` (${e.code})` : "";
  return `${name}: ${message}${detail}`;
}

/**
 * What a failed connect() probe means, for `what` ("sqs sqs://host:9324"): a ConfigError for
 * missing credentials or region, BrokerUnreachableError for refused credentials or no answer, and
 * undefined for any other answer of the service (access denied to the probe still proves it answers).
 */
export function connectFailure(error: unknown, what: string, timedOut: boolean, timeoutMs: number): Error | undefined {
  const e = error as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const why = timedOut ? `no answer within ${timeoutMs} ms` : describeAwsError(error);
  if (e.name === "CredentialsProviderError") {
    return new ConfigError(`${what}: no AWS credentials found (${e.message}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE`);
  }
  if (/region is missing/i.test(e.message ?? "")) return new ConfigError(`${what}: no AWS region; add ?region=... to the URL or set AWS_REGION`);
  if (isAuthFailure(error)) return new BrokerUnreachableError(`${what} refused the credentials: ${why}`, { cause: error });
  if (status !== undefined && status < 500 && !timedOut) return undefined;
  return new BrokerUnreachableError(`${what} does not answer: ${why}`, { cause: error });
}
