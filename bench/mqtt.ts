/**
 * Throughput of the MQTT adapter against a raw mqtt.js subscriber on the same Mosquitto, same run:
 *   (a) raw client: an MQTT 5 client subscribed at QoS 1 to `$share/bench/<topic>`, a no-op async
 *       handler per `message` event, mqtt.js's own PUBACK as soon as the event was emitted;
 *   (b) the adapter, driven as the worker drives it: consumer(topic, { maxInFlight: B }), a loop of
 *       receive(B), then for each delivery a no-op async handler and ack() (its PUBACK), in turn.
 * The bench starts its own Mosquitto (Debian's binary) on a free port with `max_queued_messages 0`:
 * with the default 1,000, Mosquitto drops what a subscriber has not taken yet beyond that, connected
 * or not, and a case would wait for messages that are gone. Each case is measured live: the consumer
 * subscribes (untimed), then one QoS 1 publisher in this process sends N messages as fast as
 * Mosquitto takes them, and the clock runs from the first publish to the last message handled.
 * Both cases share that publisher, so the ratio compares the consumers; Mosquitto's
 * `max_inflight_messages` (20 by default) bounds both sides. Rounds are interleaved after an
 * unmeasured warm-up; the median is reported with the client's CPU per message.
 *
 *   npm run bench:mqtt                        # 20,000 messages, batch 100, 3 rounds
 *   BENCH_MESSAGES=5000 BENCH_ROUNDS=5 BENCH_MQTT_URL=mqtt://127.0.0.1:1883 npm run bench:mqtt   # a broker of yours
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import path from "node:path";
import { cpus, tmpdir } from "node:os";
import mqtt, { type MqttClient } from "mqtt";
import type { Consumer } from "../src/brokers/contract.js";
import { MqttBroker } from "../src/brokers/mqtt/MqttBroker.js";
import { freePort } from "../test/setup/free-port.js";
import { interleavedRounds, machineLoad, ratioAtLeast, type Sample, summarize, timed, within } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
/** Set in main(): BENCH_MQTT_URL, else the private Mosquitto's. */
let URL = process.env.BENCH_MQTT_URL ?? "";
const WARMUP = Math.min(5_000, Math.ceil(N / 4));
const TARGET = 1.0;
/** Publishes in flight at once; Mosquitto takes 20 unacked per client by default and queues the rest. */
const PUBLISH_WINDOW = 200;
/** A small JSON event, as any MQTT device or service would send it. */
const body = (i: number) => Buffer.from(`{"event":"reading","n":${i}}`);
const noopHandler = async (_message: unknown): Promise<void> => {};

function connect(options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(URL, { protocolVersion: 5, reconnectPeriod: 0, ...options });
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

/** Sends `count` QoS 1 messages to `topic`, at most PUBLISH_WINDOW unconfirmed at once. */
async function publishAll(publisher: MqttClient, topic: string, count: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      await publisher.publishAsync(topic, body(i), { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: PUBLISH_WINDOW }, lane));
}

/** `start` subscribes (untimed) and returns what runs until `count` messages were handled. */
interface Case {
  name: string;
  start(topic: string, count: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
}

const raw: Case = {
  name: `(a) raw mqtt.js: QoS 1 shared subscription, Receive Maximum ${BATCH}, no-op handler per message, auto PUBACK`,
  async start(topic, count) {
    // The same Receive Maximum as the adapter's maxInFlight: Mosquitto sends each as many unacked.
    const client = await connect({ clean: true, properties: { receiveMaximum: BATCH } });
    await client.subscribeAsync(`$share/bench/${topic}`, { qos: 1 });
    let handled = 0;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    client.on("message", (_topic, payload) => {
      void noopHandler(payload).then(() => {
        handled += 1;
        if (handled === count) done();
      });
    });
    return { consume: () => finished, stop: () => client.endAsync() };
  },
};

const adapter: Case = {
  name: `(b) adapter: maxInFlight ${BATCH}, \`receive(${BATCH})\` + no-op handler + \`ack()\` per message`,
  async start(topic, count) {
    // A client id of its own and a short session: each round leaves nothing behind in Mosquitto.
    const broker = new MqttBroker(`${URL}?group=bench&clientId=bench-${randomUUID().slice(0, 8)}&sessionExpiry=5`);
    await broker.connect();
    const consumer: Consumer = broker.consumer(topic, { maxInFlight: BATCH });
    await consumer.ready?.();
    const consume = async () => {
      const signal = AbortSignal.timeout(600_000);
      for (let got = 0; got < count; ) {
        const deliveries = await consumer.receive(BATCH, signal);
        if (deliveries.length === 0) throw new Error("receive timed out");
        for (const delivery of deliveries) {
          await noopHandler(delivery);
          await delivery.ack();
        }
        got += deliveries.length;
      }
    };
    return { consume, stop: () => broker.close() };
  },
};

let publisher: MqttClient;

async function measure(test: Case, count: number): Promise<Sample> {
  const topic = `bench/mqtt/${randomUUID().slice(0, 8)}`;
  const run = await test.start(topic, count);
  try {
    return await timed(count, async () => {
      const consumed = run.consume();
      await publishAll(publisher, topic, count);
      await within(consumed, 120_000, `last of ${count} messages on ${topic}`);
    });
  } finally {
    await run.stop();
  }
}

let privateBroker: ChildProcess | undefined;
let scratch: string | undefined;

/** A Mosquitto of our own, keeping every queued message (see the top of this file). */
async function startPrivateMosquitto(): Promise<string> {
  const port = await freePort();
  scratch = mkdtempSync(path.join(tmpdir(), "wqueue-bench-mqtt-"));
  const config = path.join(scratch, "mosquitto.conf");
  writeFileSync(config, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n`);
  const child = spawn("mosquitto", ["-c", config], { stdio: "ignore" });
  privateBroker = child;
  const failed = new Promise<never>((_, reject) => child.once("error", (error) => reject(new Error(`cannot start mosquitto (apt-get install mosquitto): ${error.message}`))));
  const url = `mqtt://127.0.0.1:${port}`;
  for (let tries = 0; ; tries += 1) {
    const answered = await Promise.race([
      new Promise<boolean>((resolve) => {
        const socket = createConnection(port, "127.0.0.1", () => {
          socket.destroy();
          resolve(true);
        });
        socket.once("error", () => resolve(false));
      }),
      failed,
    ]);
    if (answered) return url;
    if (tries > 100) throw new Error(`the private mosquitto did not listen on ${url}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function main(): Promise<void> {
  URL ||= await startPrivateMosquitto();
  try {
    publisher = await connect({ clean: true, connectTimeout: 3000 });
  } catch (error) {
    throw new Error(`Mosquitto is not reachable at ${URL} (${(error as Error).message}); start it with:
  mosquitto -d -c /etc/mosquitto/mosquitto.conf   (apt-get install mosquitto)`);
  }
  const cases = [raw, adapter];
  const samples = await interleavedRounds(cases, ROUNDS, (test) => measure(test, WARMUP), (test) => measure(test, N));
  const { medians, rows } = summarize(cases, samples);
  const [a, b] = medians as [number, number];
  console.log(`### MQTT adapter throughput

${N.toLocaleString("en-US")} messages of about ${body(N).length} bytes, QoS 1, published live by one client in this
process (${PUBLISH_WINDOW} publishes in flight), one consumer, batch ${BATCH}, on ${process.env.BENCH_MQTT_URL ? "the broker given" : "a private Mosquitto (max_queued_messages 0)"}. After a ${WARMUP.toLocaleString("en-US")}-message warm-up;
median of ${ROUNDS} interleaved rounds. Mosquitto on loopback, Node ${process.version},
${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with Mosquitto).

| Consumer | msgs/s (median) | range | client CPU µs/msg (median, publisher included) |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

- (b)/(a): ${ratioAtLeast("MQTT adapter / raw mqtt.js subscriber", b / a, TARGET)}
`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(async () => {
    await publisher?.endAsync().catch(() => {});
    privateBroker?.kill("SIGTERM");
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });
