import type { ChainableCommander, Redis } from "ioredis";
import { bySlot } from "./cluster-keys.js";

/**
 * One command per request (`add` queues it on the pipeline it is given and returns what that call
 * returns), sent as one pipeline; returns the replies in request order, as `pipeline.exec()` does.
 * ioredis sends a Cluster's pipeline to one node, so there it is one pipeline per slot
 * (./cluster-keys.ts), in parallel. A lone request (of the call, or of its slot) is sent as a plain
 * command instead: `add` is then given the client itself, and a pipeline of one would only add its
 * bookkeeping (on a Cluster, a Pipeline object and a slot check per call: a tenth of a busy Streams
 * reader's CPU).
 */
export async function pipelined<T extends { queue: string }>(
  client: Redis,
  requests: readonly T[],
  add: (pipeline: ChainableCommander, request: T) => unknown,
): Promise<[Error | null, unknown][]> {
  if (!client.isCluster || requests.length === 1) return send(client, requests, add);
  const groups = bySlot(requests, (request) => request.queue, true);
  const sent = groups.map((group) => send(client, group, add));
  const byRequest = new Map<T, [Error | null, unknown]>();
  for (const [index, replies] of (await Promise.all(sent)).entries()) {
    for (const [at, request] of (groups[index] ?? []).entries()) byRequest.set(request, replies[at] ?? [new Error("no reply"), null]);
  }
  return requests.map((request) => byRequest.get(request) ?? [new Error("no reply"), null]);
}

/** `requests` (all of one slot on a Cluster) as one pipeline, or as a plain command when there is one. */
async function send<T>(client: Redis, requests: readonly T[], add: (pipeline: ChainableCommander, request: T) => unknown): Promise<[Error | null, unknown][]> {
  if (requests.length === 1) {
    // The client has the pipeline's command methods; there they return the reply's promise.
    const reply = add(client as unknown as ChainableCommander, requests[0] as T) as Promise<unknown>;
    return reply.then(
      (value): [Error | null, unknown][] => [[null, value]],
      (error: Error): [Error | null, unknown][] => [[error, null]],
    );
  }
  const pipeline = client.pipeline();
  for (const request of requests) add(pipeline, request);
  return (await pipeline.exec()) ?? [];
}
