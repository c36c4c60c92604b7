import { ConfigError } from "../../errors.js";
import { type AwsEndpoint, parseAwsUrl } from "../aws/aws-url.js";
import { rangeParam, redactUrl } from "../url.js";

/**
 * `kinesis://[accessKey:secret@]host:port[?region=..&tls=false&app=NAME&checkpoints=URL&shards=N&lease=MS&poll=MS&deadLetters=envelope|plain]`
 * for a local Kinesis endpoint (kinesis-local, LocalStack), `kinesis://[?region=...]` with no host
 * for AWS itself.
 *
 * - No host: AWS; region, credentials and endpoint from the SDK's defaults (AWS_REGION, the default
 *   credential chain) unless `?region=` or user:password are given. A host: `http://host:port`
 *   (`tls=true`: https), region us-east-1 unless given, dummy credentials unless given.
 * - `app` (default "wqueue"): the application, as the KCL names it. Workers of one app share each
 *   stream's shards through leases and checkpoints; two apps each read every record.
 * - `checkpoints` (default redis://127.0.0.1:6379): where leases and checkpoints live, a redis://,
 *   rediss:// or sqlite:// URL (./leases/). SQLite suits workers on one machine only.
 * - `shards` (default 1): shard count of streams this adapter creates on first use.
 * - `lease` (ms, default 10000): a worker that stops renewing for this long loses its shards to the
 *   others. Renewed every third of it.
 * - `poll` (ms, default 250): pause between reads of a shard that had nothing new. AWS allows five
 *   reads a second per shard, shared by every app reading it.
 * - `deadLetters` (default `envelope`): how dead letters are written to `<stream>.dead`. `envelope`:
 *   the wqueue JSON envelope (./record-codec.ts) with the `x-wqueue-dead-*` headers (reason, error,
 *   attempts, origin), which `wqueue dead-letters list|replay` read. `plain`: the record's payload
 *   as it was, under its key as the partition key, nothing added, for consumers that are not
 *   wqueue; the reason is then only in the worker's log, and replay needs `--to QUEUE`.
 */
export interface KinesisUrl extends AwsEndpoint {
  app: string;
  /** Not redacted: only ever handed to the lease store, which redacts it itself. */
  checkpoints: string;
  shards: number;
  leaseMs: number;
  pollMs: number;
  /** Dead letters as the bare payload (`deadLetters=plain`) instead of the envelope. */
  plainDeadLetters: boolean;
}

export const DEFAULT_CHECKPOINTS = "redis://127.0.0.1:6379";

export function parseKinesisUrl(url: string): KinesisUrl {
  const { parsed, endpoint } = parseAwsUrl(url, "kinesis", ["app", "checkpoints", "shards", "lease", "poll", "deadLetters"], "streams");
  const shown = endpoint.url;
  const app = parsed.searchParams.get("app") ?? "wqueue";
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(app)) throw new ConfigError(`broker ${shown}: app=${app} must be 1-128 of A-Z a-z 0-9 _ . -`);
  const checkpoints = parsed.searchParams.get("checkpoints") ?? DEFAULT_CHECKPOINTS;
  if (!/^(redis|rediss|sqlite):/.test(checkpoints)) {
    throw new ConfigError(`broker ${shown}: checkpoints=${redactUrl(checkpoints)} must be a redis://, rediss:// or sqlite:// URL`);
  }
  const deadLetters = parsed.searchParams.get("deadLetters") ?? "envelope";
  if (deadLetters !== "envelope" && deadLetters !== "plain") throw new ConfigError(`broker ${shown}: deadLetters=${deadLetters} must be envelope or plain`);
  return {
    ...endpoint,
    app,
    checkpoints,
    shards: rangeParam(parsed, "shards", 1, 1, 10_000, shown),
    leaseMs: rangeParam(parsed, "lease", 10_000, 300, 3_600_000, shown),
    pollMs: rangeParam(parsed, "poll", 250, 10, 60_000, shown),
    plainDeadLetters: deadLetters === "plain",
  };
}
