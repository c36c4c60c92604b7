import { randomUUID } from "node:crypto";
import type { MqttClient } from "mqtt";
import { ConfigError } from "../../errors.js";
import type { Broker, BrokerFeatures, BrokerLog, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { redactUrl } from "../url.js";
import { connectClient } from "./connect-client.js";
import { encode } from "./message-codec.js";
import { MqttConsumer, type MqttConsumerContext } from "./MqttConsumer.js";
import { hasWildcard, type MqttUrl, parseMqttUrl } from "./mqtt-url.js";

/**
 * MQTT 5 (`mqtt://`, `mqtts://`; Mosquitto 2, EMQX, HiveMQ): a queue is a topic, or a topic filter
 * with `+` / `#` for consuming. The workers of a group share one subscription
 * (`$share/<group>/<topic>`) and split its messages; each keeps a persistent session, so what is
 * published while it is down waits for it. At-least-once with acks after the handler: see
 * MqttConsumer. publish() resolves once the broker has PUBACKed every message (QoS 1).
 */
export class MqttBroker implements Broker {
  readonly kind = "mqtt";
  readonly url: string;
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    // A nack's delay is a timer in the worker: after a crash the message comes back at once.
    durableDelay: false,
    durable: true,
    ordered: true,
  };
  readonly config: MqttUrl;
  readonly #lifecycle: BrokerLifecycle<MqttConsumer>;
  readonly #consumerContext: MqttConsumerContext;
  #publisher: Promise<MqttClient> | undefined;

  constructor(url: string, log: BrokerLog = () => {}) {
    this.config = parseMqttUrl(url);
    this.url = redactUrl(url);
    this.#lifecycle = new BrokerLifecycle("mqtt", this.url);
    this.#consumerContext = { config: this.config, url: this.url, log, closed: (consumer) => this.#lifecycle.forget(consumer) };
  }

  /** The publishing connection (a clean session of its own); a failed attempt is retried by the next call. */
  #connectedPublisher(): Promise<MqttClient> {
    this.#publisher ??= connectClient(this.config.connectUrl, this.url, { clientId: `wqueue-pub-${randomUUID()}`, clean: true }).catch((error) => {
      this.#publisher = undefined;
      throw error;
    });
    return this.#publisher;
  }

  async connect(): Promise<void> {
    this.#lifecycle.assertOpen();
    await this.#connectedPublisher();
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    return this.#lifecycle.track(new MqttConsumer(this.#consumerContext, queue, deadLetterTopic(queue, options), options.maxInFlight));
  }

  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    if (hasWildcard(queue)) throw new ConfigError(`mqtt: cannot publish to "${queue}": "+" and "#" are for subscribing; publish to a topic`);
    if (messages.some((message) => (message.delayMs ?? 0) > 0)) {
      throw new ConfigError(`mqtt: cannot publish to "${queue}" with a delay: MQTT has no delayed delivery`);
    }
    if (messages.length === 0) return;
    const client = await this.#connectedPublisher();
    await Promise.all(
      messages.map((message) => {
        const { payload, properties } = encode(message);
        return client.publishAsync(queue, payload, { qos: 1, properties });
      }),
    );
  }

  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      const publisher = await this.#publisher?.catch(() => undefined);
      await publisher?.endAsync();
    });
  }
}

/**
 * `<queue>.dead` unless configured; for a filter with wildcards, `+` and `#` become `_` (a topic
 * cannot hold them), so `sensors/+/temp` dead-letters to `sensors/_/temp.dead`.
 */
function deadLetterTopic(queue: string, options: ConsumerOptions): string {
  return BrokerLifecycle.deadLetterQueue(queue.replace(/[+#]/g, "_"), options);
}
