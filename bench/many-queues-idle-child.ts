/**
 * The idle half of bench:many-queues, in a process of its own so its RSS is the worker's and not
 * the bench's: a Worker (concurrency 100, no-op handler) over the queues named on stdin (one JSON
 * line: { url, queues }), idle for IDLE_MS after a settling second; prints one JSON line
 * { cpuSeconds, rssMiB, peakRssMiB } and waits for "stop" on stdin before it stops the worker, so
 * the parent can count its connections meanwhile.
 */
import { createInterface } from "node:readline";
import { pino } from "pino";
import { WQueue } from "../src/app/WQueue.js";
import { Worker } from "../src/worker/Worker.js";

const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 10_000);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function main(): Promise<void> {
  const { url, queues } = JSON.parse(String((await lines.next()).value)) as { url: string; queues: string[] };
  const app = new WQueue({ broker: url });
  for (const queue of queues) app.listenEvents(queue, () => {});
  const worker = new Worker(app, { broker: url, concurrency: 100, logger: pino({ level: "warn" }) });
  await worker.start();
  await new Promise((resolve) => setTimeout(resolve, 1000)); // past the start-up
  const cpu = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
  const used = process.cpuUsage(cpu);
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ cpuSeconds: (used.user + used.system) / 1e6, rssMiB, peakRssMiB }));
  await lines.next(); // "stop"
  await worker.stop(5000);
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
