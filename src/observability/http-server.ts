import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import {
  canRemoveOne,
  type DeadLetterTarget,
  type DeadLetterView,
  deleteOneDeadLetter,
  findDeadLetter,
  listDeadLetters,
  replayDeadLetters,
  replayOneDeadLetter,
} from "../dead-letters/dead-letters.js";
import { ConfigError, serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { WorkerView } from "./WorkerView.js";
import { DASHBOARD_HTML } from "./dashboard-page.js";
import { PROM_CLIENT_MISSING } from "./prom-client.js";
import { allowedHostnames, refusal } from "./http-guard.js";
import { type StatsSnapshot, statsSnapshot } from "./stats-snapshot.js";
import { StatsHistory } from "./StatsHistory.js";

/** What the endpoint shows: one worker process, or a supervisor's children taken together. */
export interface ObservedWorker {
  snapshot(): Promise<StatsSnapshot>;
  /** Undefined when prom-client is not installed: /metrics then answers 501 (prom-client.ts). */
  metrics(): Promise<{ contentType: string; text: string } | undefined>;
  readiness(): Promise<{ ready: boolean; problems: string[] }>;
  deadLettersOf(queue: string): Promise<DeadLetterTarget | undefined>;
  /** Pauses or resumes `queue` in every worker process; `problems`: processes that did not answer. */
  setPaused(queue: string, paused: boolean): Promise<PauseResult>;
}

export interface PauseResult {
  /** Subscriptions on the queue, summed over the processes that answered. */
  subscriptions: number;
  processes: number;
  problems: string[];
}

/** The single-process view: the worker itself and its Prometheus registry (none without prom-client). */
export function observeWorker(worker: WorkerView, registry: Registry | undefined): ObservedWorker {
  return {
    snapshot: () => statsSnapshot(worker),
    metrics: async () => (registry ? { contentType: registry.contentType, text: await registry.metrics() } : undefined),
    readiness: async () => worker.readiness(),
    deadLettersOf: (queue) => worker.deadLettersOf(queue),
    setPaused: async (queue, paused) => ({ subscriptions: worker.setPaused(queue, paused), processes: 1, problems: [] }),
  };
}

export interface HttpServerOptions {
  /** "PORT", "HOST:PORT" or "[v6]:PORT"; a bare port binds loopback only. */
  address: string;
  /** When set, every route but /healthz, /readyz and the page itself needs `Authorization: Bearer TOKEN`. */
  token?: string;
  /** DNS names (besides IP literals and localhost) the Host header may carry, e.g. a Service's name. */
  allowedHosts?: readonly string[];
  observed: ObservedWorker;
  logger: Logger;
  /** How often the charts' history is sampled (default HISTORY_INTERVAL_MS). */
  historyIntervalMs?: number;
}

export const DEFAULT_HTTP_ADDRESS = "127.0.0.1:9464";

/** `what` names the flag or command in the error, e.g. "--http" or "stats". */
export function parseAddress(address: string, what = "--http"): { host: string; port: number } {
  // PORT, HOST:PORT or [V6]:PORT: a host is always followed by a colon ("9464" is a port).
  const match = /^(?:(?:\[([^\]]+)\]|([^:[\]]+)):)?(\d+)$/.exec(address.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`${what} ${address}: expected PORT or HOST:PORT, e.g. ${DEFAULT_HTTP_ADDRESS}`);
  }
  return { host: match[1] ?? match[2] ?? "127.0.0.1", port };
}

/**
 * The worker's HTTP endpoint: /metrics (Prometheus), /healthz (alive), /readyz (consuming),
 * the dashboard at /, and its JSON API under /api. Off unless --http is given.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<Server> {
  const { host, port } = parseAddress(options.address);
  const expected = options.token ? Buffer.from(`Bearer ${options.token}`) : undefined;
  const authorized = (request: IncomingMessage) => {
    if (!expected) return true;
    const given = Buffer.from(request.headers.authorization ?? "");
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  const { observed } = options;
  const allowedHosts = allowedHostnames(options.allowedHosts ?? []);
  const history = new StatsHistory(() => observed.snapshot(), { intervalMs: options.historyIntervalMs });

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      options.logger.error({ err: serializeError(error), url: request.url }, "HTTP request failed");
      if (!response.headersSent) send(response, 500, { error: (error as Error).message });
      else response.end();
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://localhost");
    const route = `${request.method} ${url.pathname}`;
    if (route === "GET /healthz") return send(response, 200, { ok: true });
    if (route === "GET /readyz") {
      const readiness = await observed.readiness();
      return send(response, readiness.ready ? 200 : 503, readiness);
    }
    // Probes above answer any Host (they show no message); everything below is guarded.
    const refused = refusal(request, allowedHosts);
    if (refused) return send(response, 403, { error: refused });
    if (route === "GET /") {
      response.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        // No other site may frame the page and trick a click on "replay".
        "content-security-policy": "frame-ancestors 'none'",
        "x-frame-options": "DENY",
      });
      response.end(DASHBOARD_HTML);
      return;
    }
    if (!authorized(request)) return send(response, 401, { error: "missing or wrong bearer token" });
    if (route === "GET /metrics") {
      const metrics = await observed.metrics();
      if (!metrics) return send(response, 501, { error: PROM_CLIENT_MISSING });
      response.writeHead(200, { "content-type": metrics.contentType });
      response.end(metrics.text);
      return;
    }
    if (route === "GET /api/stats") return send(response, 200, await observed.snapshot());
    if (route === "GET /api/history") return send(response, 200, { intervalMs: history.intervalMs, samples: history.samples() });
    if (route === "POST /api/queues/pause" || route === "POST /api/queues/resume") {
      const queue = url.searchParams.get("queue") ?? "";
      const paused = url.pathname.endsWith("/pause");
      const result = await observed.setPaused(queue, paused);
      if (result.subscriptions === 0 && result.problems.length === 0) {
        return send(response, 404, { error: `this worker does not listen on queue "${queue}"` });
      }
      options.logger.info({ queue, ...result }, `${paused ? "paused" : "resumed"} ${queue} from the dashboard`);
      // 502: some process did not answer, so the queue may still run there.
      return send(response, result.problems.length > 0 ? 502 : 200, { queue, paused, ...result });
    }
    if (url.pathname.startsWith("/api/dead-letters/one")) {
      const queue = url.searchParams.get("queue") ?? "";
      const id = url.searchParams.get("id") ?? "";
      const target = await observed.deadLettersOf(queue);
      if (!target) return send(response, 404, { error: `this worker does not listen on queue "${queue}"` });
      const single = canRemoveOne(target.broker);
      if (route === "GET /api/dead-letters/one") {
        const letter = await findDeadLetter(target.broker, target.deadQueue, id);
        if (!letter) return send(response, 404, { error: `no dead letter ${id} waiting in ${target.deadQueue}` });
        return send(response, 200, { letter: readable(letter), canReplayOrDeleteOne: single });
      }
      const action = route === "POST /api/dead-letters/one/replay" ? "replay" : route === "POST /api/dead-letters/one/delete" ? "delete" : undefined;
      if (!action) return send(response, 404, { error: `no route ${route}` });
      if (!single) {
        return send(response, 501, { error: `${target.broker.kind} cannot address one dead letter: replay or purge the whole dead-letter queue` });
      }
      const done = action === "replay" ? await replayOneDeadLetter(target, id) : await deleteOneDeadLetter(target, id);
      if (!done) return send(response, 404, { error: `no dead letter ${id} waiting in ${target.deadQueue}` });
      options.logger.info({ queue, id }, `${action === "replay" ? "replayed" : "deleted"} dead letter ${id} of ${queue} from the dashboard`);
      return send(response, 200, { [action === "replay" ? "replayed" : "deleted"]: id });
    }
    if (route === "GET /api/dead-letters" || route === "POST /api/dead-letters/replay") {
      const queue = url.searchParams.get("queue") ?? "";
      const target = await observed.deadLettersOf(queue);
      if (!target) return send(response, 404, { error: `this worker does not listen on queue "${queue}"` });
      const limit = Math.min(1000, Number(url.searchParams.get("limit") ?? 100) || 100);
      if (request.method === "GET") {
        const letters = await listDeadLetters(target.broker, target.deadQueue, limit);
        return send(response, 200, letters.map(readable));
      }
      const replayed = await replayDeadLetters(target.broker, target.deadQueue, { limit, replayTo: target.replayBroker });
      options.logger.info({ queue, replayed }, `replayed ${replayed} dead letter(s) of ${queue} from the dashboard`);
      return send(response, 200, { replayed });
    }
    send(response, 404, { error: `no route ${route}` });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => reject(new ConfigError(`--http ${options.address}: ${error.message}`)));
    server.listen(port, host, () => resolve());
  });
  history.start();
  server.once("close", () => history.stop());
  return server;
}

/** A dead letter for JSON: the payload as text (the page shows it as it came). */
function readable({ body, ...rest }: DeadLetterView) {
  return { ...rest, body: Buffer.from(body).toString("utf8") };
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  response.end(JSON.stringify(body));
}
