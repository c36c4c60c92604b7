import { ConfigError } from "../../errors.js";
import { redactUrl } from "../url.js";

/**
 * `kafka://host:port[,host:port...][?group=NAME&partitions=N]`, parsed by hand: the WHATWG parser
 * refuses a comma-separated list of hosts in the authority.
 */
export interface KafkaUrl {
  /** Seed brokers, "host:port". */
  brokers: string[];
  /** Consumer group every queue of this broker reads in (Kafka's group.id). */
  group: string;
  /** Partitions of the topics this adapter creates; existing topics keep theirs. */
  partitions: number;
  /** Redacted, for logs and errors. */
  shown: string;
}

export const DEFAULT_GROUP = "wqueue";
const PARAMS = ["group", "partitions"];

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
  return { brokers, group, partitions, shown };
}
