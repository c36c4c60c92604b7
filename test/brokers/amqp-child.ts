/**
 * A second OS process for test/brokers/amqp-attempts.test.ts, run with `node --import tsx`:
 *   hold URL QUEUE   receives one message (prefetch 1), prints { id, attempt, body } as a JSON
 *                    line, then never settles and never closes: it waits to be killed, like a
 *                    worker that died mid-message.
 */
import { openAmqpBroker } from "../../src/brokers/amqp/open-amqp-broker.js";

const [mode, url, queue] = process.argv.slice(2);
if (mode !== "hold" || url === undefined || queue === undefined) throw new Error("usage: amqp-child.ts hold URL QUEUE");
const broker = openAmqpBroker(url);
await broker.connect();
const consumer = broker.consumer(queue, { maxInFlight: 1 });
let got: Awaited<ReturnType<typeof consumer.receive>> = [];
while (got.length === 0) got = await consumer.receive(1, AbortSignal.timeout(20_000));
const [delivery] = got;
const body = delivery && new TextDecoder().decode(delivery.body);
process.stdout.write(`${JSON.stringify({ id: delivery?.id, attempt: delivery?.attempt, body })}\n`);
setInterval(() => {}, 60_000); // hold the message until SIGKILL
