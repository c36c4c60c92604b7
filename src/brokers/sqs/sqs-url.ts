import { type AwsEndpoint, parseAwsUrl } from "../aws/aws-url.js";
import { booleanParam, rangeParam } from "../url.js";

/**
 * `sqs://[accessKey:secret@]host:port[?region=us-east-1&visibility=30&wait=20&redrive=N&fifo=false&tls=false]`
 * for a local SQS endpoint (ElasticMQ, LocalStack), `sqs://[?region=...]` with no host for AWS itself.
 *
 * - No host: AWS. Region, credentials and endpoint come from the SDK's defaults (AWS_REGION or
 *   ~/.aws/config, the default credential chain: environment, SSO, web identity, instance role),
 *   unless `?region=` or user:password are given. The same app runs unchanged on AWS.
 * - A host: the endpoint `http://host:port` (`tls=true`: https), region `?region=` (default
 *   us-east-1), credentials user:password or the dummy `x`/`x` a local server accepts.
 * - `visibility` (seconds, SQS's unit; default 30, 1..43200): how long a received message stays
 *   hidden. A handler running longer keeps its message: the adapter extends it while it runs.
 * - `wait` (seconds, 1..20; default 20): the long poll of an idle consumer.
 * - `redrive=N` (1..1000): queues this adapter creates get SQS's own RedrivePolicy to `<queue>.dead`
 *   after N receives, a safety net for messages whose handler kills the worker every time. Keep the
 *   worker's retry limit (maxAttempts) below N, so wqueue dead-letters first, with the error headers.
 * - `fifo=true`: every queue of this broker is a FIFO queue, as if its name ended in `.fifo`
 *   (./queue-names.ts), and the broker reports `ordered` (per message key).
 */
export interface SqsUrl extends AwsEndpoint {
  visibilitySeconds: number;
  waitSeconds: number;
  redrive: number | undefined;
  /** Every queue is a FIFO queue (`?fifo=true`); otherwise only names ending in `.fifo` are. */
  fifo: boolean;
}

export const DEFAULT_VISIBILITY_SECONDS = 30;
/** SQS refuses a visibility timeout (and so a nack delay) above 12 hours. */
export const MAX_VISIBILITY_SECONDS = 43_200;

export function parseSqsUrl(url: string): SqsUrl {
  const { parsed, endpoint } = parseAwsUrl(url, "sqs", ["visibility", "wait", "redrive", "fifo"], "queues");
  const shown = endpoint.url;
  return {
    ...endpoint,
    visibilitySeconds: rangeParam(parsed, "visibility", DEFAULT_VISIBILITY_SECONDS, 1, MAX_VISIBILITY_SECONDS, shown),
    waitSeconds: rangeParam(parsed, "wait", 20, 1, 20, shown),
    redrive: parsed.searchParams.has("redrive") ? rangeParam(parsed, "redrive", 0, 1, 1000, shown) : undefined,
    fifo: booleanParam(parsed, "fifo", shown),
  };
}
