import type { Redis } from "ioredis";
import type { ReplicaWait } from "../shared/redis-clients.js";

/**
 * `?wait=N`: publish returns only once N replicas hold what it wrote. Redis replicates
 * asynchronously, so a master that dies (or fails over) before its replicas got a write loses it;
 * WAIT N timeout, sent on the connection that carried the write, blocks until N replicas
 * acknowledged everything that connection wrote, or the timeout passed. Fewer acks than N: the
 * publish fails (the message is on the master and may or may not survive; a retry may duplicate it).
 *
 * On a Cluster, WAIT has no key, so alone it would go to any node: it is sent in one pipeline with
 * a read of the queue's own key, which ioredis sends to the master of that key's slot, over the one
 * connection per node that also carried the write. The price: one more round trip per publish call,
 * of at least the replication lag, during which that connection's other commands queue behind it.
 */
export async function awaitReplicas(client: Redis, queue: string, wait: ReplicaWait, shown: string): Promise<void> {
  if (wait.replicas === 0) return;
  let acked: number;
  if (client.isCluster) {
    const replies = (await client.pipeline().exists(queue).wait(wait.replicas, wait.timeoutMs).exec()) ?? [];
    const [error, reply] = replies[1] ?? [new Error("no reply to WAIT"), 0];
    if (error) throw error;
    acked = Number(reply);
  } else acked = await client.wait(wait.replicas, wait.timeoutMs);
  if (acked < wait.replicas) {
    throw new Error(
      `publish to ${queue} on ${shown}: ${acked} of ${wait.replicas} replica(s) acknowledged within ${wait.timeoutMs} ms (?wait=${wait.replicas}); the message is on the master only and is lost if it fails now`,
    );
  }
}
