/**
 * A second OS process for the reliable and stream Redis tests, run with `node --import tsx`:
 *   hold URL QUEUE COUNT   receives COUNT messages, prints each as a JSON line, then never settles
 *                          and never closes: it waits to be killed, like a crashed worker.
 *   ack-exit URL QUEUE COUNT receives COUNT messages, acks them all, and in the same turn calls
 *                          process.exit(1), as a handler beside them might.
 */
import type { Delivery } from "../../src/brokers/contract.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";

const [mode, url, queue, count] = process.argv.slice(2);
if ((mode !== "hold" && mode !== "ack-exit") || url === undefined || queue === undefined) {
  throw new Error("usage: redis-child.ts hold|ack-exit URL QUEUE COUNT");
}
const broker = openRedisBroker(url);
await broker.connect();
const consumer = broker.consumer(queue);
const held: Delivery[] = [];
while (held.length < Number(count ?? 1)) {
  for (const delivery of await consumer.receive(Number(count ?? 1) - held.length, AbortSignal.timeout(10_000))) {
    const line = { id: delivery.id, attempt: delivery.attempt, body: new TextDecoder().decode(delivery.body) };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    held.push(delivery);
  }
}
if (mode === "ack-exit") {
  for (const delivery of held) void delivery.ack();
  process.exit(1);
}
setInterval(() => {}, 60_000); // hold the messages until SIGKILL
