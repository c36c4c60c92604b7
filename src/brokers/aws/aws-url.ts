import { ConfigError } from "../../errors.js";
import { booleanParam, decodeUserInfo, parseBrokerUrl, redactUrl } from "../url.js";

/**
 * The part every AWS broker URL shares (`sqs://`, `kinesis://`): where to send requests, in which
 * region, with which credentials.
 *
 * - No host: AWS itself. Region, credentials and endpoint come from the SDK's defaults (AWS_REGION
 *   or ~/.aws/config, the default credential chain) unless `?region=` or user:password are given,
 *   so the same app runs unchanged on AWS.
 * - A host: the local endpoint `http://host:port` (`?tls=true`: https), region `?region=` (default
 *   us-east-1), credentials user:password or the dummy `x`/`x` local servers accept.
 */
export interface AwsEndpoint {
  /** Redacted: the only form that goes into logs and errors. */
  url: string;
  /** `http(s)://host:port`, or undefined for AWS's own endpoints. */
  endpoint: string | undefined;
  /** Undefined on AWS without `?region=`: the SDK's default region provider decides. */
  region: string | undefined;
  /** From the URL's user:password, or dummy ones for a local endpoint; undefined: the default chain. */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
}

const LOCAL_REGION = "us-east-1";
const SHARED = ["region", "tls"];

/**
 * Parses the shared part and checks the rest: the scheme, no path (`what` names what the
 * subscriptions name instead), and no parameter outside `known` and region/tls.
 */
export function parseAwsUrl(url: string, scheme: string, known: readonly string[], what: string): { parsed: URL; endpoint: AwsEndpoint } {
  const parsed = parseBrokerUrl(url);
  const shown = redactUrl(url);
  if (parsed.protocol !== `${scheme}:`) throw new ConfigError(`broker ${shown}: not a ${scheme}:// URL`);
  const allowed = new Set([...SHARED, ...known]);
  for (const name of parsed.searchParams.keys()) {
    if (!allowed.has(name)) throw new ConfigError(`broker ${shown}: unknown parameter ${name} (known: ${[...allowed].join(", ")})`);
  }
  if (parsed.pathname !== "" && parsed.pathname !== "/") {
    throw new ConfigError(`broker ${shown}: ${scheme}:// URLs name no path; ${what} are named by the subscriptions`);
  }
  const region = parsed.searchParams.get("region") || undefined;
  if (region !== undefined && !/^[a-z0-9-]+$/.test(region)) throw new ConfigError(`broker ${shown}: region=${region} is not a region name`);
  const local = parsed.hostname !== "";
  const tls = booleanParam(parsed, "tls", shown);
  const user = decodeUserInfo(parsed.username);
  const password = decodeUserInfo(parsed.password);
  if ((user === "") !== (password === "")) {
    throw new ConfigError(`broker ${shown}: give both access key id and secret (${scheme}://KEY:SECRET@host), or neither`);
  }
  const given = user === "" ? undefined : { accessKeyId: user, secretAccessKey: password };
  return {
    parsed,
    endpoint: {
      url: shown,
      endpoint: local ? `${tls ? "https" : "http"}://${parsed.host}` : undefined,
      region: region ?? (local ? LOCAL_REGION : undefined),
      credentials: given ?? (local ? { accessKeyId: "x", secretAccessKey: "x" } : undefined),
    },
  };
}
