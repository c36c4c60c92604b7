/**
 * A second OS process for test/brokers/postgres.test.ts, run with `node --import tsx`:
 *   receive URL QUEUE MAX ACKS   receives one batch of up to MAX messages, acks the first ACKS of
 *                                them, prints {acked, held} (bodies) as a JSON line, then never
 *                                settles the rest and never closes: it waits to be killed mid-batch
 */
import { PostgresBroker } from "../../src/brokers/postgres/PostgresBroker.js";

const [mode, url, queue, max, acks] = process.argv.slice(2);
if (mode !== "receive" || url === undefined || queue === undefined) throw new Error("usage: postgres-child.ts receive URL QUEUE MAX ACKS");
const broker = new PostgresBroker(url);
await broker.connect();
const consumer = broker.consumer(queue);
let got: Awaited<ReturnType<typeof consumer.receive>> = [];
while (got.length === 0) got = await consumer.receive(Number(max), AbortSignal.timeout(10_000));
const acked = got.slice(0, Number(acks));
await Promise.all(acked.map((delivery) => delivery.ack()));
const read = (delivery: (typeof got)[number]) => new TextDecoder().decode(delivery.body);
const line = { acked: acked.map(read), held: got.slice(acked.length).map(read), attempts: got.map((d) => d.attempt), at: Date.now() };
process.stdout.write(`${JSON.stringify(line)}\n`);
setInterval(() => {}, 60_000); // hold the rest until SIGKILL
