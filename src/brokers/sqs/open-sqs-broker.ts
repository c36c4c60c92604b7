import type { Broker, BrokerLog } from "../contract.js";
import { SqsBroker } from "./SqsBroker.js";
import { parseSqsUrl } from "./sqs-url.js";

/**
 * `sqs://host:port?region=...` (a local endpoint such as ElasticMQ) or `sqs://` (AWS, through the
 * SDK's default region and credential chain) -> the SQS adapter (./SqsBroker.ts; URL options in
 * ./sqs-url.ts). Throws ConfigError (URL redacted) for a malformed URL or option; sends nothing:
 * connect() checks the endpoint. `log` hears of retried receives and lost heartbeats, always with
 * the redacted URL.
 */
export function openSqsBroker(url: string, log: BrokerLog = () => {}): Broker {
  return new SqsBroker(parseSqsUrl(url), log);
}
