/**
 * A second OS process for test/brokers/sqs.test.ts, run with `node --import tsx`:
 *   receive URL QUEUE   receives one message, prints it as a JSON line, then never settles and
 *                       never closes (its heartbeat keeps the message hidden): it waits to be
 *                       killed, like a crashed worker
 */
import { openSqsBroker } from "../../src/brokers/sqs/open-sqs-broker.js";

const [mode, url, queue] = process.argv.slice(2);
if (mode !== "receive" || url === undefined || queue === undefined) throw new Error("usage: sqs-child.ts receive URL QUEUE");
const broker = openSqsBroker(url);
await broker.connect();
const consumer = broker.consumer(queue);
let got: Awaited<ReturnType<typeof consumer.receive>> = [];
while (got.length === 0) got = await consumer.receive(1, AbortSignal.timeout(10_000));
const [delivery] = got;
const body = delivery && new TextDecoder().decode(delivery.body);
process.stdout.write(`${JSON.stringify({ id: delivery?.id, attempt: delivery?.attempt, body, at: Date.now() })}\n`);
setInterval(() => {}, 60_000); // hold the message until SIGKILL
