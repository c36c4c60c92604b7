/**
 * The second OS process of the conformance suite's kill cases (started by child-consumer.ts, never
 * by hand). Its one argument is a JSON ChildTask. It opens the broker the way the conformance file
 * said (a module's export, or wqueue's URL registry), does the task, prints one JSON line with what
 * it did, and then neither settles nor closes anything: it waits to be SIGKILLed, like a worker
 * that died mid-message.
 *
 *   hold        receives and acks `ack` messages, then receives `hold` more and holds them
 *   nack-delay  receives one message and nacks it with `delayMs`
 */
import { pathToFileURL } from "node:url";
import type { Broker, Delivery } from "../brokers/contract.js";
import type { ChildTask } from "./child-consumer.js";

const task = JSON.parse(process.argv[2] ?? "") as ChildTask;

async function openBroker(): Promise<Broker> {
  if (task.module === undefined) return (await import("../brokers/registry.js")).createBroker(task.arg);
  const specifier = /^[a-z]+:/i.test(task.module) ? task.module : pathToFileURL(task.module).href;
  const loaded = (await import(specifier)) as Record<string, unknown>;
  const open = loaded[task.export ?? "open"];
  if (typeof open !== "function") throw new Error(`${task.module} has no function export "${task.export ?? "open"}"`);
  return (await open(task.arg)) as Broker;
}

const describe = (delivery: Delivery) => ({
  id: delivery.id,
  body: new TextDecoder().decode(delivery.body),
  attempt: delivery.attempt,
});

const broker = await openBroker();
await broker.connect();
// It acks before it takes what it holds, so it never has more than `hold` unsettled: a prefetching
// broker (AMQP) then leaves the rest of the queue to other consumers.
const maxInFlight = task.mode === "hold" ? Math.max(task.ack, task.hold) : 1;
const consumer = broker.consumer(task.queue, { maxInFlight, onePerPartition: task.onePerPartition });
const signal = AbortSignal.timeout(task.timeoutMs);
/** Receives `count` messages, one receive at most `count` (less with a partitioned broker's one-per-partition). */
async function take(count: number): Promise<Delivery[]> {
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(count - got.length, signal)));
  if (got.length < count) throw new Error(`child: received ${got.length} of ${count} messages within ${task.timeoutMs} ms`);
  return got;
}
// Acks first, then takes what it holds: with one record per partition at a time, that is the only order that works.
const acked = task.mode === "hold" ? await take(task.ack) : [];
await Promise.all(acked.map((delivery) => delivery.ack()));
const held = await take(task.mode === "hold" ? task.hold : 1);
// An aborted receive tells a consumer that reading stopped: nothing more is pulled in (this process
// would die holding that too).
await consumer.receive(1, AbortSignal.abort());
if (task.mode === "hold") {
  process.stdout.write(`${JSON.stringify({ acked: acked.map(describe), held: held.map(describe), at: Date.now() })}\n`);
} else {
  const [delivery] = held as [Delivery];
  const before = Date.now();
  await delivery.nack({ delayMs: task.delayMs });
  process.stdout.write(`${JSON.stringify({ nacked: describe(delivery), before, at: Date.now() })}\n`);
}
setInterval(() => {}, 60_000); // hold everything until SIGKILL
