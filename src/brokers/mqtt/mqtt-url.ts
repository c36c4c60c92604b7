import { hostname } from "node:os";
import { ConfigError } from "../../errors.js";
import { intParam, parseBrokerUrl, redactUrl } from "../url.js";

/**
 * `mqtt://user:pass@host:1883?group=wqueue&clientId=worker-1&sessionExpiry=86400` (`mqtts://`
 * too). wqueue's parameters are taken out; the rest of the URL goes to mqtt.js as it is.
 */
export interface MqttUrl {
  /** For mqtt.js, without wqueue's parameters. */
  connectUrl: string;
  /** Shared-subscription group: the workers of one group split a topic (`$share/<group>/<topic>`). */
  group: string;
  /**
   * Base of each consumer's client id (`<base>:<queue>`). It must be the same after a restart, so
   * the restarted worker gets back the session holding what its predecessor had not acked; and
   * different per worker, or two workers take the session from each other.
   */
  clientIdBase: string;
  /** Seconds the broker keeps a disconnected worker's session (its subscription and messages). */
  sessionExpirySec: number;
}

export const DEFAULT_GROUP = "wqueue";
export const DEFAULT_SESSION_EXPIRY_SEC = 7 * 24 * 3600;
const OWN_PARAMS = ["group", "clientId", "sessionExpiry"];

export function parseMqttUrl(url: string): MqttUrl {
  const parsed = parseBrokerUrl(url);
  const shown = redactUrl(url);
  if (parsed.protocol !== "mqtt:" && parsed.protocol !== "mqtts:") throw new ConfigError(`not an mqtt URL: ${shown}`);
  const group = parsed.searchParams.get("group") ?? DEFAULT_GROUP;
  // A share name cannot hold a topic separator or a wildcard (MQTT 5, 4.8.2).
  if (!/^[^/+#]+$/.test(group)) throw new ConfigError(`broker ${shown}: group=${group} must not contain "/", "+" or "#"`);
  const sessionExpirySec = intParam(parsed, "sessionExpiry", DEFAULT_SESSION_EXPIRY_SEC);
  if (sessionExpirySec < 1 || sessionExpirySec > 0xffffffff) throw new ConfigError(`broker ${shown}: sessionExpiry=${sessionExpirySec} must be 1..4294967295 seconds`);
  // The children of `--processes N` (WQUEUE_CHILD_INDEX, kept across their restarts) each get their own.
  const child = process.env.WQUEUE_CHILD_INDEX;
  const clientIdBase = parsed.searchParams.get("clientId") ?? `wqueue-${group}-${hostname()}${child ? `-${child}` : ""}`;
  for (const name of OWN_PARAMS) parsed.searchParams.delete(name);
  return { connectUrl: parsed.toString(), group, clientIdBase, sessionExpirySec };
}

/** True when an MQTT topic filter holds a wildcard: it can be subscribed to, not published to. */
export function hasWildcard(topic: string): boolean {
  return topic.includes("+") || topic.includes("#");
}
