/**
 * A second OS process for test/brokers/kafka.test.ts, run with `node --import tsx`:
 *   receive URL TOPIC   receives one record, prints it as a JSON line, then never settles and
 *                       never closes: it waits to be SIGKILLed, like a worker whose handler
 *                       killed it (its group membership ends only when the session times out)
 */
import { openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";

const [mode, url, topic] = process.argv.slice(2);
if (mode !== "receive" || url === undefined || topic === undefined) throw new Error("usage: kafka-child.ts receive URL TOPIC");
const broker = openKafkaBroker(url);
await broker.connect();
const consumer = broker.consumer(topic);
let got: Awaited<ReturnType<typeof consumer.receive>> = [];
while (got.length === 0) got = await consumer.receive(1, AbortSignal.timeout(60_000));
const [delivery] = got;
const body = delivery && new TextDecoder().decode(delivery.body);
process.stdout.write(`${JSON.stringify({ id: delivery?.id, attempt: delivery?.attempt, body })}\n`);
setInterval(() => {}, 60_000); // hold the record until SIGKILL
