import { SQSClient, type SQSClientConfig } from "@aws-sdk/client-sqs";
import type { SqsUrl } from "./sqs-url.js";

/**
 * The AWS SDK client for one broker URL. Everything the URL does not say is left to the SDK's
 * defaults (region provider, credential chain, retry mode), so an app that runs against ElasticMQ
 * with `sqs://127.0.0.1:9324` runs against AWS with `sqs://`.
 *
 * HTTP: keep-alive sockets (a long poll holds one per consumer), a connection timeout so a dead
 * endpoint fails in seconds instead of the OS's minutes, and a request timeout above the longest
 * long poll so a request the server never answers fails too.
 */
export interface ClientOptions {
  /** Attempts per call, retries included (the SDK's default is 3). */
  maxAttempts?: number;
  connectionTimeoutMs?: number;
}

const CONNECTION_TIMEOUT_MS = 3000;
/** Above any long poll (at most 20 s) with room for a slow answer. */
const REQUEST_TIMEOUT_MS = 35_000;
const MAX_SOCKETS = 64;

export function createSqsClient(config: SqsUrl, options: ClientOptions = {}): SQSClient {
  const settings: SQSClientConfig = {
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      httpAgent: { keepAlive: true, maxSockets: MAX_SOCKETS },
      httpsAgent: { keepAlive: true, maxSockets: MAX_SOCKETS },
    },
  };
  if (config.endpoint !== undefined) settings.endpoint = config.endpoint;
  if (config.region !== undefined) settings.region = config.region;
  if (config.credentials !== undefined) settings.credentials = config.credentials;
  return new SQSClient(settings);
}

/** What the SDK's errors carry that matters here. */
interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $fault?: "client" | "server";
  $metadata?: { httpStatusCode?: number };
}

const QUEUE_MISSING = new Set(["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"]);
const THROTTLED = new Set(["ThrottlingException", "RequestThrottled", "Throttling", "KmsThrottled"]);
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

export function isQueueMissing(error: unknown): boolean {
  return QUEUE_MISSING.has((error as SdkError)?.name ?? "");
}

/** The request was cancelled through its abortSignal. */
export function isAbort(error: unknown): boolean {
  return (error as SdkError)?.name === "AbortError";
}

/** The credentials were refused (not: no credentials found, which is the CredentialsProviderError). */
export function isAuthFailure(error: unknown): boolean {
  return AUTH_FAILED.has((error as SdkError)?.name ?? "");
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
  return status >= 500 || e?.$fault === "server" || THROTTLED.has(e?.name ?? "");
}

/** One line for logs and errors: the SDK error's name and message, no request ids or stacks. */
export function describeSqsError(error: unknown): string {
  const e = error as SdkError;
  const name = e?.name ?? "Error";
  const message = e?.message ?? String(error);
  const detail = e?.code !== undefined && !message.includes(e.code) ? ` (${e.code})` : "";
  return `${name}: ${message}${detail}`;
}
