import type { Broker, BrokerLog } from "../contract.js";
import { KinesisBroker } from "./KinesisBroker.js";
import { parseKinesisUrl } from "./kinesis-url.js";

/**
 * `kinesis://host:port?...` (a local endpoint such as kinesis-local) or `kinesis://` (AWS, through
 * the SDK's default region and credential chain) -> the Kinesis adapter (./KinesisBroker.ts; URL
 * options in ./kinesis-url.ts). Throws ConfigError (URL redacted) for a malformed URL or option;
 * sends nothing: connect() checks the endpoint.
 */
export function openKinesisBroker(url: string, log: BrokerLog = () => {}): Broker {
  return new KinesisBroker(parseKinesisUrl(url), log);
}
