import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { KinesisClient, type KinesisClientConfig } from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { errorName } from "../aws/sdk-errors.js";
import type { KinesisUrl } from "./kinesis-url.js";

/**
 * The AWS SDK client for one broker URL; what the URL does not say is left to the SDK's defaults
 * (region provider, credential chain, retries), so the app that runs on kinesis-local runs on AWS.
 *
 * HTTP/1.1 through NodeHttpHandler: the Kinesis client defaults to HTTP/2 (for SubscribeToShard,
 * which this adapter does not use), and that handler fails against local servers over plain HTTP.
 * Keep-alive sockets, a connection timeout so a dead endpoint fails in seconds, and a request
 * timeout so a request the server never answers fails too.
 */
const CONNECTION_TIMEOUT_MS = 3000;
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_SOCKETS = 64;

export function createKinesisClient(config: KinesisUrl, options: { maxAttempts?: number } = {}): KinesisClient {
  const settings: KinesisClientConfig = {
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
    }),
  };
  if (config.endpoint !== undefined) settings.endpoint = config.endpoint;
  if (config.region !== undefined) settings.region = config.region;
  if (config.credentials !== undefined) settings.credentials = config.credentials;
  return new KinesisClient(settings);
}

/** The stream does not exist (or not yet, or no longer). */
export function isStreamMissing(error: unknown): boolean {
  return errorName(error) === "ResourceNotFoundException";
}

/** The stream is being created, resharded or deleted by somebody: wait for it. */
export function isStreamBusy(error: unknown): boolean {
  return errorName(error) === "ResourceInUseException";
}

/** A shard iterator older than five minutes: get a new one from the last record read. */
export function isIteratorExpired(error: unknown): boolean {
  return errorName(error) === "ExpiredIteratorException";
}
