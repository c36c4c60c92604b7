import type { ChainableCommander, Redis } from "ioredis";
import { bySlot } from "./cluster-keys.js";

/**
 * One command per request (`add` queues it on the pipeline it is given), sent as one pipeline;
 * returns the replies in request order, as `pipeline.exec()` does. ioredis sends a Cluster's
 * pipeline to one node, so there it is one pipeline per slot (./cluster-keys.ts), in parallel.
 */
export async function pipelined<T extends { queue: string }>(
  client: Redis,
  requests: readonly T[],
  add: (pipeline: ChainableCommander, request: T) => unknown,
): Promise<[Error | null, unknown][]> {
  if (!client.isCluster) {
    const pipeline = client.pipeline();
    for (const request of requests) add(pipeline, request);
    return (await pipeline.exec()) ?? [];
  }
  const groups = bySlot(requests, (request) => request.queue, true);
  const sent = groups.map((group) => {
    const pipeline = client.pipeline();
    for (const request of group) add(pipeline, request);
    return pipeline.exec();
  });
  const byRequest = new Map<T, [Error | null, unknown]>();
  for (const [index, replies] of (await Promise.all(sent)).entries()) {
    for (const [at, request] of (groups[index] ?? []).entries()) byRequest.set(request, replies?.[at] ?? [new Error("no reply"), null]);
  }
  return requests.map((request) => byRequest.get(request) ?? [new Error("no reply"), null]);
}
