import type { Redis } from "ioredis";
import { pipelined } from "./pipelined.js";
import type { StreamConsumer } from "./StreamConsumer.js";
import type { StreamDelivery } from "./StreamDelivery.js";

/** Ids per XACK: bounds the arguments of one command. */
const ACK_CHUNK = 1000;

/**
 * Sends one turn's acks of all a broker's stream consumers (a TickBatcher's batch): one XACK per
 * stream (per ACK_CHUNK ids), all in one pipeline, so a worker over 1,000 busy streams writes one
 * batch of commands per turn instead of one command per stream. The deliveries leave their
 * consumer's `unsettled` once the pipeline completed (or failed). On a Cluster: one pipeline per slot.
 */
export async function sendStreamAcks(commands: Redis, group: string, deliveries: StreamDelivery[]): Promise<void> {
  try {
    const byOwner = new Map<StreamConsumer, string[]>();
    for (const delivery of deliveries) {
      const ids = byOwner.get(delivery.owner);
      if (ids) ids.push(delivery.id);
      else byOwner.set(delivery.owner, [delivery.id]);
    }
    const calls: { queue: string; ids: string[] }[] = [];
    for (const [owner, ids] of byOwner) {
      for (let start = 0; start < ids.length; start += ACK_CHUNK) calls.push({ queue: owner.queue, ids: ids.slice(start, start + ACK_CHUNK) });
    }
    const replies = await pipelined(commands, calls, (pipeline, { queue, ids }) => pipeline.xack(queue, group, ...ids));
    const failed = replies.find(([error]) => error !== null);
    if (failed) throw failed[0];
  } finally {
    for (const delivery of deliveries) delivery.owner.unsettled.delete(delivery.id);
  }
}
