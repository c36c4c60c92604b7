import type { Redis } from "ioredis";
import { bySlot } from "./cluster-keys.js";
import type { ReliableConsumer } from "./ReliableConsumer.js";
import type { ReliableDelivery } from "./ReliableDelivery.js";
import type { ReliableClient } from "./reliable-scripts.js";

/** Items per ack script call: bounds the arguments of one call. */
const ACK_CHUNK = 1000;

/**
 * Sends one turn's acks of all a broker's reliable consumers (a TickBatcher's batch): per
 * ACK_CHUNK items, one ACK_MANY script call over the processing lists involved, so a worker over
 * 1,000 busy queues sends one call per turn, not one per queue. The deliveries leave their
 * consumer's `unsettled` once their call completed (or failed). On a Cluster: one call per slot.
 */
export async function sendReliableAcks(commands: Redis, deliveries: ReliableDelivery[]): Promise<void> {
  const script = commands as ReliableClient;
  try {
    const calls: Promise<number>[] = [];
    const groups = bySlot(deliveries, (delivery) => delivery.owner.queue, commands.isCluster);
    for (const group of groups) {
    for (let start = 0; start < group.length; start += ACK_CHUNK) {
      const byOwner = new Map<ReliableConsumer, Buffer[]>();
      for (const delivery of group.slice(start, start + ACK_CHUNK)) {
        const items = byOwner.get(delivery.owner);
        if (items) items.push(delivery.stored);
        else byOwner.set(delivery.owner, [delivery.stored]);
      }
      const keys: string[] = [];
      const args: (number | Buffer)[] = [];
      for (const [owner, items] of byOwner) {
        keys.push(owner.keys.processing);
        args.push(items.length, ...items);
      }
      calls.push(script.wqueueReliableAckMany(keys.length, ...keys, ...args));
    }
    }
    await Promise.all(calls);
  } finally {
    for (const delivery of deliveries) delivery.owner.unsettled.delete(delivery);
  }
}
