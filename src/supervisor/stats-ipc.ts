import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import type { MetricObjectWithValues, MetricValue, Registry } from "prom-client";
import { loadPromClient } from "../observability/prom-client.js";
import type { ObservedWorker } from "../observability/http-server.js";
import type { ChildSnapshot, CronSnapshot, QueueSnapshot, StatsSnapshot } from "../observability/stats-snapshot.js";

/**
 * Under --processes, one HTTP endpoint shows the whole worker: the supervisor asks each child for
 * its stats over the fork IPC channel and adds them up (Prometheus metrics through prom-client's
 * AggregatorRegistry). A child that does not answer within REPLY_MS counts as not ready.
 */
export const STATS_IPC_ENV = "WQUEUE_STATS_IPC";
const REPLY_MS = 2000;

interface StatsRequest {
  type: "wqueue:stats?";
  id: string;
}
/** The dashboard's pause or resume of a queue, passed to every child. */
interface PauseRequest {
  type: "wqueue:pause?";
  id: string;
  queue: string;
  paused: boolean;
}
interface PauseReply {
  type: "wqueue:pause";
  id: string;
  subscriptions: number;
}
interface StatsReply {
  type: "wqueue:stats";
  id: string;
  snapshot: StatsSnapshot;
  /** Empty when the child has no prom-client. */
  metrics: MetricObjectWithValues<MetricValue<string>>[];
  readiness: { ready: boolean; problems: string[] };
}

/** In a child: answer the supervisor's stats requests and carry out its pauses. */
export function answerStatsRequests(source: {
  snapshot(): Promise<StatsSnapshot>;
  /** Undefined without prom-client. */
  registry: Registry | undefined;
  readiness(): { ready: boolean; problems: string[] };
  setPaused(queue: string, paused: boolean): number;
}): void {
  process.on("message", (message: StatsRequest | PauseRequest) => {
    if (message?.type === "wqueue:pause?") {
      const reply: PauseReply = { type: "wqueue:pause", id: message.id, subscriptions: source.setPaused(message.queue, message.paused) };
      process.send?.(reply);
      return;
    }
    if (message?.type !== "wqueue:stats?") return;
    void (async () => {
      const reply: StatsReply = {
        type: "wqueue:stats",
        id: message.id,
        snapshot: await source.snapshot(),
        metrics: source.registry ? await source.registry.getMetricsAsJSON() : [],
        readiness: source.readiness(),
      };
      process.send?.(reply);
    })();
  });
}

/** Sends `request` to one child; its reply, or why there is none. */
function ask<Reply extends { type: string; id: string }>(
  index: number,
  child: ChildProcess,
  request: StatsRequest | PauseRequest,
  replyType: Reply["type"],
): Promise<Reply | string> {
  if (!child.connected) return Promise.resolve(`child ${index} is not running`);
  const { id } = request;
  return new Promise((resolve) => {
    const onMessage = (message: Reply) => {
      if (message?.type !== replyType || message.id !== id) return;
      done(message);
    };
    const timer = setTimeout(() => done(`child ${index} did not answer within ${REPLY_MS} ms`), REPLY_MS);
    const done = (result: Reply | string) => {
      clearTimeout(timer);
      child.off("message", onMessage);
      resolve(result);
    };
    child.on("message", onMessage);
    child.send(request, (error) => error && done(`child ${index}: ${error.message}`));
  });
}

function mergeCrons(snapshots: StatsSnapshot[]): CronSnapshot[] {
  const merged = new Map<string, CronSnapshot>();
  for (const cron of snapshots.flatMap((s) => s.crons ?? [])) {
    const seen = merged.get(cron.name);
    if (!seen) merged.set(cron.name, { ...cron });
    else for (const field of ["runs", "failed", "skipped", "missed"] as const) seen[field] += cron[field];
  }
  return [...merged.values()];
}

function mergeQueues(snapshots: StatsSnapshot[]): QueueSnapshot[] {
  const merged = new Map<string, QueueSnapshot>();
  for (const queue of snapshots.flatMap((s) => s.queues)) {
    const key = `${queue.queue}\n${queue.broker}`;
    const seen = merged.get(key);
    if (!seen) {
      merged.set(key, { ...queue });
      continue;
    }
    for (const field of ["received", "succeeded", "failed", "retried", "deadLettered", "inFlight"] as const) seen[field] += queue[field];
    // The same queue seen by every child: its backlog once; latency: the slowest child's.
    for (const field of ["backlog", "p50Ms", "p95Ms"] as const) {
      seen[field] = seen[field] === null ? queue[field] : Math.max(seen[field] as number, queue[field] ?? 0);
    }
    seen.paused ||= queue.paused;
    if (queue.autoLimit !== undefined) seen.autoLimit = (seen.autoLimit ?? 0) + queue.autoLimit;
  }
  return [...merged.values()];
}

/** The supervisor's view of its children for the HTTP endpoint. */
export function observeChildren(
  children: ReadonlyMap<number, ChildProcess>,
  deadLettersOf: ObservedWorker["deadLettersOf"],
): ObservedWorker {
  // Queues paused from the dashboard: a child started later (a restart) is told on its first answer.
  const pausedQueues = new Set<string>();
  const pauseRequest = (queue: string, paused: boolean): PauseRequest => ({ type: "wqueue:pause?", id: randomUUID(), queue, paused });
  const reconcile = (index: number, reply: StatsReply) => {
    const child = children.get(index);
    for (const queue of reply.snapshot.queues) {
      if (child && pausedQueues.has(queue.queue) && !queue.paused) void ask<PauseReply>(index, child, pauseRequest(queue.queue, true), "wqueue:pause");
    }
  };
  const gather = async () => {
    const replies = await Promise.all(
      [...children].map(([index, child]) => ask<StatsReply>(index, child, { type: "wqueue:stats?", id: randomUUID() }, "wqueue:stats")),
    );
    const indexes = [...children.keys()];
    const list: ChildSnapshot[] = replies.map((reply, i) => {
      const index = indexes[i] as number;
      if (typeof reply === "string") {
        return { index, pid: children.get(index)?.pid, uptimeSeconds: null, ready: false, problems: [reply], received: 0, inFlight: 0, paused: [] };
      }
      reconcile(index, reply);
      const sum = (field: "received" | "inFlight") => reply.snapshot.queues.reduce((total, q) => total + q[field], 0);
      const { pid, uptimeSeconds } = reply.snapshot;
      const paused = reply.snapshot.queues.filter((q) => q.paused).map((q) => q.queue);
      return { index, pid, uptimeSeconds, ...reply.readiness, received: sum("received"), inFlight: sum("inFlight"), paused };
    });
    return {
      answered: replies.filter((r): r is StatsReply => typeof r !== "string"),
      problems: replies.filter((r): r is string => typeof r === "string"),
      children: list,
    };
  };
  return {
    async snapshot() {
      const { answered, children: list } = await gather();
      const snapshots = answered.map((r) => r.snapshot);
      return {
        time: Date.now(),
        pid: process.pid,
        uptimeSeconds: Math.round(process.uptime()),
        model: snapshots[0]?.model ?? "starting",
        concurrency: snapshots.reduce((sum, s) => sum + s.concurrency, 0),
        processes: snapshots.length,
        queues: mergeQueues(snapshots),
        crons: mergeCrons(snapshots),
        recentFailures: snapshots
          .flatMap((s) => s.recentFailures)
          .sort((a, b) => b.at.localeCompare(a.at))
          .slice(0, 50),
        children: list,
      };
    },
    async metrics() {
      const prom = await loadPromClient();
      if (!prom) return undefined;
      const { answered } = await gather();
      const registry = prom.AggregatorRegistry.aggregate(answered.map((r) => r.metrics));
      return { contentType: registry.contentType, text: await registry.metrics() };
    },
    async readiness() {
      const { answered, problems } = await gather();
      for (const reply of answered) problems.push(...reply.readiness.problems);
      return { ready: problems.length === 0 && answered.length > 0, problems };
    },
    deadLettersOf,
    async setPaused(queue, paused) {
      if (paused) pausedQueues.add(queue);
      else pausedQueues.delete(queue);
      const replies = await Promise.all([...children].map(([index, child]) => ask<PauseReply>(index, child, pauseRequest(queue, paused), "wqueue:pause")));
      const answered = replies.filter((r): r is PauseReply => typeof r !== "string");
      return {
        subscriptions: answered.reduce((sum, r) => sum + r.subscriptions, 0),
        processes: answered.length,
        problems: replies.filter((r): r is string => typeof r === "string"),
      };
    },
  };
}
