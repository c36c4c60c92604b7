/**
 * A second OS process for test/brokers/nats.test.ts, run with `node --import tsx`:
 *   hold URL QUEUE ACK HOLD   receives ACK + HOLD messages (maxInFlight = ACK + HOLD), acks the first
 *                             ACK, prints one JSON line { acked, held, receivedAt } (bodies and
 *                             attempts; when the last one came), then
 *                             never settles the others and never closes: it waits to be killed,
 *                             like a worker that died mid-message.
 */
import { openNatsBroker } from "../../src/brokers/nats/open-nats-broker.js";

const [mode, url, queue, ackCount, holdCount] = process.argv.slice(2);
if (mode !== "hold" || url === undefined || queue === undefined) {
  throw new Error("usage: nats-child.ts hold URL QUEUE ACK HOLD");
}
const toAck = Number(ackCount);
const toHold = Number(holdCount);
const broker = openNatsBroker(url);
await broker.connect();
const consumer = broker.consumer(queue, { maxInFlight: toAck + toHold });
const got: Awaited<ReturnType<typeof consumer.receive>> = [];
const signal = AbortSignal.timeout(20_000);
while (got.length < toAck + toHold && !signal.aborted) got.push(...(await consumer.receive(toAck + toHold - got.length, signal)));
const receivedAt = Date.now();
const describe = (delivery: (typeof got)[number]) => ({ body: new TextDecoder().decode(delivery.body), attempt: delivery.attempt });
// An aborted receive tells the consumer that reading stopped: the acks below free credit, which
// would otherwise pull the next messages in (and this process would die holding those too).
await consumer.receive(1, AbortSignal.abort());
const acked = got.slice(0, toAck);
await Promise.all(acked.map((delivery) => delivery.ack()));
await broker.backlog?.(queue); // a round trip on the same connection: the acks reached the server
process.stdout.write(`${JSON.stringify({ acked: acked.map(describe), held: got.slice(toAck).map(describe), receivedAt })}\n`);
setInterval(() => {}, 60_000); // hold the rest until SIGKILL
