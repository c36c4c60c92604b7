import { randomUUID } from "node:crypto";
import type { IPublishPacket, MqttClient } from "mqtt";
import type { BrokerLog, Consumer, DeadLetterReason, Delivery, Headers, OutgoingMessage } from "../contract.js";
import { anyAbort } from "../any-abort.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { Wakeup } from "../wakeup.js";
import { connectClient } from "./connect-client.js";
import { decode, encode } from "./message-codec.js";
import type { MqttUrl } from "./mqtt-url.js";

/** What a consumer uses of its broker, and no more. */
export interface MqttConsumerContext {
  readonly config: MqttUrl;
  /** The broker's URL, password redacted. */
  readonly url: string;
  readonly log: BrokerLog;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: MqttConsumer): void;
}

/** Handed to mqtt.js's handleMessage callback: it then sends no PUBACK and reads on (handlers/publish.js). */
const PUBACK_LATER = new Error("wqueue acks this message itself, after its handler");
/** MQTT 5 reason code of a DISCONNECT: another client connected with this client id. */
const SESSION_TAKEN_OVER = 0x8e;
/** Without a concurrency from the caller: MQTT's own default Receive Maximum. */
const MAX_RECEIVE_MAXIMUM = 65_535;

/**
 * The receiving side of an MqttBroker: one MQTT 5 connection per consumer, subscribed at QoS 1 to
 * `$share/<group>/<queue>` with a persistent session (clean start off, session expiry), so the
 * broker keeps the subscription and its messages while the worker is down, and the workers of a
 * group split the topic.
 *
 * Acks: mqtt.js PUBACKs a message when its `handleMessage` calls back; this consumer calls back at
 * once without the PUBACK and sends the PUBACK itself when the delivery settles, so an unacked
 * message stays in the session and the broker sends it again after a reconnect or a crash. The
 * connection's Receive Maximum is the caller's concurrency (`maxInFlight`): the broker never sends
 * more unacked messages than can run. PUBACKs go out as handlers finish, not in arrival order
 * (MQTT 5 4.6 asks for arrival order; Mosquitto matches a PUBACK by packet id).
 *
 * Attempts: MQTT counts no deliveries; it only flags a resent message (DUP). A resent message this
 * consumer does not hold (its previous receiver died or closed without acking) is re-published as
 * the next attempt (`x-wqueue-attempt`) and then acked, so the count survives any number of crashes
 * and the poison policy sees it. nack() re-publishes the same way, after its delay (kept in this
 * process only: MQTT has no delayed delivery); deadLetter() publishes to the dead-letter topic.
 * Every re-publish is confirmed (PUBACK from the broker) before the original is acked.
 */
export class MqttConsumer implements Consumer {
  readonly #closing = new AbortController();
  readonly #wakeup = new Wakeup();
  /** Received and not handed out yet. */
  readonly #buffer: MqttDelivery[] = [];
  /** Received (buffered or handed out), not PUBACKed yet, by packet id. */
  readonly #held = new Map<number, MqttDelivery>();
  /** Settled while disconnected: PUBACKed when the broker sends them again after the reconnect. */
  readonly #ackPending = new Set<number>();
  readonly clientId: string;
  #client: Promise<MqttClient> | undefined;
  /** The connected client, for PUBACKs sent synchronously. */
  #clientNow: MqttClient | undefined;
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: MqttConsumerContext,
    readonly queue: string,
    readonly deadLetterTopic: string,
    readonly maxInFlight: number | undefined,
  ) {
    this.clientId = `${context.config.clientIdBase}:${queue}`;
  }

  /** Connects and subscribes once; a failed attempt is retried by the next call. */
  ready(): Promise<void> {
    return this.#connected().then(() => {});
  }

  #connected(): Promise<MqttClient> {
    this.#client ??= this.#connect().catch((error) => {
      this.#client = undefined;
      throw error;
    });
    return this.#client;
  }

  async #connect(): Promise<MqttClient> {
    const { config, url } = this.context;
    const client = await connectClient(
      config.connectUrl,
      url,
      {
        clientId: this.clientId,
        clean: false,
        properties: {
          sessionExpiryInterval: config.sessionExpirySec,
          receiveMaximum: Math.min(MAX_RECEIVE_MAXIMUM, Math.max(1, this.maxInFlight ?? MAX_RECEIVE_MAXIMUM)),
        },
      },
      (client) => {
        this.#clientNow = client;
        client.handleMessage = (packet, callback) => {
          if (packet.cmd === "publish") this.#arrived(packet);
          callback(packet.cmd === "publish" && packet.qos === 1 ? PUBACK_LATER : undefined);
        };
        client.on("connect", (connack) => {
          // A new session (the old one expired): the broker will not send the pending ones again.
          if (!connack.sessionPresent) this.#ackPending.clear();
        });
        client.on("disconnect", (packet) => {
          if (packet.reasonCode === SESSION_TAKEN_OVER) {
            this.context.log("error", `mqtt ${url}: another client connected as "${this.clientId}": give each worker its own ?clientId=`);
          }
        });
        client.on("error", (error) => this.context.log("warn", `mqtt ${url}: ${error.message}`));
      },
    );
    // Reconnects: subscribe again when the broker lost the session (mqtt.js resubscribes too).
    client.on("connect", (connack) => {
      if (!connack.sessionPresent) void this.#subscribe(client, this.queue).catch(() => {});
    });
    await this.#subscribe(client, this.queue);
    await this.#keepDeadLetters();
    return client;
  }

  /**
   * An MQTT broker drops a message no session subscribes to. So before its first dead letter can
   * exist, the dead-letter topic gets a persistent session of the group: the one a consumer of that
   * topic with this URL resumes (`<clientId base>:<dead-letter topic>`), which keeps them till then.
   */
  async #keepDeadLetters(): Promise<void> {
    const { config, url } = this.context;
    const holder = await connectClient(config.connectUrl, url, {
      clientId: `${config.clientIdBase}:${this.deadLetterTopic}`,
      clean: false,
      reconnectPeriod: 0,
      properties: { sessionExpiryInterval: config.sessionExpirySec },
    });
    try {
      await this.#subscribe(holder, this.deadLetterTopic);
    } finally {
      await holder.endAsync();
    }
  }

  async #subscribe(client: MqttClient, topic: string): Promise<void> {
    const filter = `$share/${this.context.config.group}/${topic}`;
    try {
      const granted = await client.subscribeAsync(filter, { qos: 1 });
      const code = granted[0]?.qos;
      if (code !== undefined && code > 2) throw new Error(`the broker refused ${filter} (reason code ${code})`);
    } catch (error) {
      this.context.log("warn", `mqtt ${this.context.url}: subscribing to ${filter} failed (${(error as Error).message})`);
      throw error;
    }
  }

  #arrived(packet: IPublishPacket): void {
    const id = packet.messageId;
    if (packet.qos === 0 || id === undefined) {
      // Published at QoS 0: at most once, nothing to acknowledge.
      this.#push(new MqttDelivery(this, packet, undefined, 1));
      return;
    }
    if (this.#held.has(id)) return; // sent again after a reconnect while still held here
    if (this.#ackPending.delete(id)) {
      this.puback(id);
      return;
    }
    const delivery = new MqttDelivery(this, packet, id, decode(packet).publishedAttempt);
    this.#held.set(id, delivery);
    if (packet.dup) {
      // Its earlier receiver died or left without acking: count that delivery, durably.
      void delivery.requeue(delivery.attempt + 1).catch(() => {});
      return;
    }
    this.#push(delivery);
  }

  #push(delivery: MqttDelivery): void {
    if (this.#closing.signal.aborted) return; // not acked: the session keeps it
    this.#buffer.push(delivery);
    this.#wakeup.notify();
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    const stop = anyAbort(signal, this.#closing.signal);
    try {
      await this.#connected();
      while (!stop.signal.aborted) {
        if (this.#buffer.length > 0) {
          const taken = this.#buffer.splice(0, Math.max(1, Math.floor(max)));
          for (const delivery of taken) delivery.handedOut = true;
          return taken;
        }
        await this.#wakeup.wait(stop.signal);
      }
      return [];
    } finally {
      stop.dispose();
    }
  }

  /** Publishes on this consumer's connection; resolves once the broker has it (its PUBACK). */
  async publish(topic: string, message: OutgoingMessage): Promise<void> {
    const client = await this.#connected();
    const { payload, properties } = encode(message);
    await client.publishAsync(topic, payload, { qos: 1, properties });
  }

  /** Acknowledges packet `id` to the broker; while disconnected, when the broker sends it again. */
  puback(id: number): void {
    this.#held.delete(id);
    const client = this.#clientNow;
    if (client?.connected) {
      (client as unknown as { _sendPacket(packet: object): void })._sendPacket({ cmd: "puback", messageId: id, reasonCode: 0 });
    } else {
      this.#ackPending.add(id);
    }
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      this.context.closed(this);
      const client = await this.#client?.catch(() => undefined);
      if (!client) return;
      // Give back what was handed out and not settled, as its next attempt, and what was only
      // buffered, as the same attempt; the session keeps whatever could not be re-published.
      this.#buffer.length = 0;
      await Promise.allSettled([...this.#held.values()].map((delivery) => delivery.giveBack()));
      await client.endAsync();
    })();
    return this.#closed;
  }
}

class MqttDelivery extends SettleOnceDelivery {
  readonly id = randomUUID();
  readonly queue: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly partition = undefined;
  readonly attempt: number;
  readonly topic: string;
  handedOut = false;
  #delay: { timer: NodeJS.Timeout; fire: () => void } | undefined;
  /** A nack's re-publish waiting for its delay. */
  #delayed: Promise<void> | undefined;

  constructor(
    readonly consumer: MqttConsumer,
    packet: IPublishPacket,
    /** The packet id to PUBACK; undefined for a QoS 0 message. */
    readonly packetId: number | undefined,
    attempt: number,
  ) {
    super();
    const decoded = decode(packet);
    this.queue = consumer.queue;
    this.topic = packet.topic;
    this.body = decoded.body;
    this.headers = decoded.headers;
    this.key = decoded.key;
    this.attempt = attempt;
  }

  #puback(): void {
    if (this.packetId !== undefined) this.consumer.puback(this.packetId);
  }

  protected async doAck(): Promise<void> {
    this.#puback();
  }

  protected async doNack(delayMs: number): Promise<void> {
    if (delayMs === 0) return this.requeue(this.attempt + 1);
    // The message stays unacked here meanwhile: a crash during the delay leaves it in the session
    // (back at once, as the next attempt); a failed re-publish leaves it there too.
    this.#delayed = new Promise<void>((resolve) => {
      this.#delay = { timer: setTimeout(resolve, delayMs), fire: resolve };
    })
      .then(() => this.requeue(this.attempt + 1))
      .catch((error: Error) => this.consumer.context.log("warn", `mqtt ${this.consumer.context.url}: a delayed nack failed (${error.message})`));
  }

  protected async doDeadLetter(reason: DeadLetterReason): Promise<void> {
    await this.consumer.publish(this.consumer.deadLetterTopic, { body: this.body, headers: deadLetterHeaders(this, reason), key: this.key });
    this.#puback();
  }

  /** Re-publishes this message to its topic as `attempt`, then acks this copy. */
  async requeue(attempt: number): Promise<void> {
    await this.consumer.publish(this.topic, { body: this.body, headers: { ...this.headers }, key: this.key, attempt });
    this.#puback();
  }

  /** On close: a delayed nack happens now; anything else unsettled goes back. */
  giveBack(): Promise<void> {
    if (this.#delay) {
      clearTimeout(this.#delay.timer);
      this.#delay.fire();
    }
    if (this.#delayed) return this.#delayed;
    // Settling already (ack, dead letter, a nack whose delay just ended): the same promise.
    if (this.settled || this.handedOut) return this.nack();
    return this.requeue(this.attempt);
  }
}
