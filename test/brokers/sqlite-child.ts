/**
 * A second OS process for test/brokers/sqlite.test.ts, run with `node --import tsx`:
 *   publish URL QUEUE COUNT   publishes bodies m0..m{COUNT-1} in one batch, closes, exits 0
 *   try-receive URL QUEUE MS  prints `listening`, tries for MS ms to receive one message, prints it
 *                             as a JSON line (or `null`) without settling it, exits 0
 */
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";

const [mode, url, queue, count] = process.argv.slice(2);
if (url === undefined || queue === undefined) {
  throw new Error("usage: sqlite-child.ts publish|try-receive URL QUEUE [COUNT|MS]");
}
const broker = new SqliteBroker(url);
await broker.connect();

if (mode === "publish") {
  const bodies = Array.from({ length: Number(count) }, (_, i) => new TextEncoder().encode(`m${i}`));
  await broker.publish(queue, bodies.map((body) => ({ body })));
  await broker.close();
} else if (mode === "try-receive") {
  const consumer = broker.consumer(queue);
  process.stdout.write("listening\n");
  const signal = AbortSignal.timeout(Number(count));
  let got: Awaited<ReturnType<typeof consumer.receive>> = [];
  while (got.length === 0 && !signal.aborted) got = await consumer.receive(1, signal);
  const [delivery] = got;
  const line = delivery && { id: delivery.id, attempt: delivery.attempt, body: new TextDecoder().decode(delivery.body) };
  process.stdout.write(`${JSON.stringify(line ?? null)}\n`);
  process.exit(0); // without close(): a message it got stays held, as by a worker that went away
} else {
  throw new Error(`unknown mode ${mode}`);
}
