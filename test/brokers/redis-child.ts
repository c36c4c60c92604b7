/**
 * A second OS process for the reliable and stream Redis tests, run with `node --import tsx`:
 *   hold URL QUEUE COUNT   receives COUNT messages, prints each as a JSON line, then never settles
 *                          and never closes: it waits to be killed, like a crashed worker.
 */
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";

const [mode, url, queue, count] = process.argv.slice(2);
if (mode !== "hold" || url === undefined || queue === undefined) {
  throw new Error("usage: redis-child.ts hold URL QUEUE COUNT");
}
const broker = openRedisBroker(url);
await broker.connect();
const consumer = broker.consumer(queue);
let held = 0;
while (held < Number(count ?? 1)) {
  for (const delivery of await consumer.receive(Number(count ?? 1) - held, AbortSignal.timeout(10_000))) {
    const line = { id: delivery.id, attempt: delivery.attempt, body: new TextDecoder().decode(delivery.body) };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    held += 1;
  }
}
setInterval(() => {}, 60_000); // hold the messages until SIGKILL
