import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { BrokerUnreachableError } from "../../errors.js";

/**
 * Opens an MQTT 5 client and waits for its first CONNACK. Rejects with BrokerUnreachableError
 * (the redacted URL) when the first attempt fails; later losses are reconnected by mqtt.js.
 */
export function connectClient(
  connectUrl: string,
  shownUrl: string,
  options: IClientOptions,
  /** Runs before any packet arrives (a session's queued messages follow the CONNACK at once). */
  setUp: (client: MqttClient) => void = () => {},
): Promise<MqttClient> {
  const client = mqtt.connect(connectUrl, { protocolVersion: 5, reconnectPeriod: 1000, connectTimeout: 10_000, ...options });
  setUp(client);
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      client.off("connect", ok);
      client.end(true);
      reject(new BrokerUnreachableError(`cannot connect to MQTT at ${shownUrl}: ${error.message}`, { cause: error }));
    };
    const ok = () => {
      client.off("error", fail);
      resolve(client);
    };
    client.once("connect", ok);
    client.once("error", fail);
  });
}
