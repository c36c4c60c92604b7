import { ConfigError } from "../../errors.js";
import { redactUrl } from "../url.js";

/**
 * `kafka://host:port[,host:port...][?group=NAME&partitions=N&rebalanceTimeout=MS]`, parsed by hand: the WHATWG parser
 * refuses a comma-separated list of hosts in the authority.
 */
export interface KafkaUrl {
  /** Seed brokers, "host:port". */
  brokers: string[];
  /** Consumer group every queue of this broker reads in (Kafka's group.id). */
  group: string;
  /** Partitions of the topics this adapter creates; existing topics keep theirs. */
  partitions: number;
  /**
   * How long a rebalance waits for members to rejoin; a member holds its rejoin until the records
   * running in it are finished, so this bounds the handlers a rebalance never runs twice at once.
   */
  rebalanceTimeoutMs: number;
  /** Redacted, for logs and errors. */
  shown: string;
}

export const DEFAULT_GROUP = "wqueue";
/** Java's max.poll.interval.ms default: handlers up to about 5 minutes survive a rebalance. */
export const DEFAULT_REBALANCE_TIMEOUT_MS = 300_000;
const PARAMS = ["group", "partitions", "rebalanceTimeout"];
/** Kafka's field is an int32 of milliseconds. */
const MAX_REBALANCE_TIMEOUT_MS = 2_147_483_647;

export function parseKafkaUrl(url: string): KafkaUrl {
  const shown = redactUrl(url);
  const match = /^kafka:\/\/([^/?#]*)\/?(?:\?([^#]*))?$/i.exec(url);
  if (!match) throw new ConfigError(`not a kafka URL: ${shown} (expected kafka://host:port[,host:port])`);
  const authority = match[1] ?? "";
  if (authority.includes("@")) {
    throw new ConfigError(`broker ${shown}: credentials in kafka URLs are not supported yet (PLAINTEXT only)`);
  }
  const brokers = authority.split(",").map((host) => host.trim());
  for (const host of brokers) {
    if (!/^(\[[0-9a-f:.]+\]|[^:\s]+):\d{1,5}$/i.test(host)) {
      throw new ConfigError(`broker ${shown}: "${host}" is not host:port (e.g. kafka://127.0.0.1:9092)`);
    }
  }
  const query = new URLSearchParams(match[2] ?? "");
  for (const name of query.keys()) {
    if (!PARAMS.includes(name)) {
      throw new ConfigError(`broker ${shown}: unknown parameter ${name} (valid: ${PARAMS.join(", ")})`);
    }
  }
  const group = query.get("group") ?? DEFAULT_GROUP;
  if (!/^[\w.-]{1,249}$/.test(group)) {
    throw new ConfigError(`broker ${shown}: group=${group} must be 1-249 letters, digits, ".", "_" or "-"`);
  }
  const rawPartitions = query.get("partitions") ?? "1";
  const partitions = Number(rawPartitions);
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 10_000) {
    throw new ConfigError(`broker ${shown}: partitions=${rawPartitions} must be a whole number from 1 to 10000`);
  }
  const rawTimeout = query.get("rebalanceTimeout") ?? String(DEFAULT_REBALANCE_TIMEOUT_MS);
  const rebalanceTimeoutMs = Number(rawTimeout);
  if (!Number.isInteger(rebalanceTimeoutMs) || rebalanceTimeoutMs < 10_000 || rebalanceTimeoutMs > MAX_REBALANCE_TIMEOUT_MS) {
    throw new ConfigError(`broker ${shown}: rebalanceTimeout=${rawTimeout} must be whole milliseconds from 10000 to ${MAX_REBALANCE_TIMEOUT_MS}`);
  }
  return { brokers, group, partitions, rebalanceTimeoutMs, shown };
}
