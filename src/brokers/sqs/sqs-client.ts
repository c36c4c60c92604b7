import { SQSClient, type SQSClientConfig } from "@aws-sdk/client-sqs";
import { errorName } from "../aws/sdk-errors.js";
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
  /**
   * Sockets open at once (default 64). The client of long polls has no bound: each holds its
   * socket up to 20 s, so a bounded pool shared with publishes and acks would starve them.
   */
  maxSockets?: number;
}

const CONNECTION_TIMEOUT_MS = 3000;
/** Above any long poll (at most 20 s) with room for a slow answer. */
const REQUEST_TIMEOUT_MS = 35_000;
const MAX_SOCKETS = 64;

export function createSqsClient(config: SqsUrl, options: ClientOptions = {}): SQSClient {
  const maxSockets = options.maxSockets ?? MAX_SOCKETS;
  const settings: SQSClientConfig = {
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      httpAgent: { keepAlive: true, maxSockets },
      httpsAgent: { keepAlive: true, maxSockets },
    },
  };
  if (config.endpoint !== undefined) settings.endpoint = config.endpoint;
  if (config.region !== undefined) settings.region = config.region;
  if (config.credentials !== undefined) settings.credentials = config.credentials;
  return new SQSClient(settings);
}

const QUEUE_MISSING = new Set(["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"]);

export function isQueueMissing(error: unknown): boolean {
  return QUEUE_MISSING.has(errorName(error));
}

export { describeAwsError as describeSqsError, isAbort, isAuthFailure, isNetworkError, isTransient } from "../aws/sdk-errors.js";
