import type { Server } from "node:http";
import path from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import { createLogger, LOG_LEVELS, type LogLevel } from "../log/logger.js";
import { DEFAULT_HTTP_ADDRESS, observeWorker, parseAddress, startHttpServer } from "../observability/http-server.js";
import { loadPromClient, PROM_CLIENT_MISSING } from "../observability/prom-client.js";
import { createMetricsRegistry } from "../observability/prometheus.js";
import { statsSnapshot } from "../observability/stats-snapshot.js";
import { childIndex, childLogger, stopWhenSupervisorGone } from "../supervisor/child.js";
import { answerStatsRequests, STATS_IPC_ENV } from "../supervisor/stats-ipc.js";
import { DEFAULT_CONCURRENCY, Worker } from "../worker/Worker.js";
import { stopOnSignals } from "./stop-on-signals.js";
import { superviseWorkers } from "./supervise-workers.js";
import { failAndExit } from "./fail.js";
import { loadApp } from "../app/load-app.js";
import { WATCHED_CHILD_ENV, watchWorker } from "./watch-worker.js";

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("must be a whole number > 0");
  return n;
}

function model(value: string): "event-loop" | "threads" {
  if (value !== "event-loop" && value !== "threads") throw new InvalidArgumentError("event-loop or threads");
  return value;
}

export function hostList(value: string): string[] {
  return value.split(",").map((name) => name.trim()).filter(Boolean);
}

function logLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new InvalidArgumentError(`one of ${LOG_LEVELS.join(", ")}`);
  return value as LogLevel;
}

interface WorkerFlags {
  app: string;
  broker?: string;
  queues?: string;
  concurrency: number;
  logLevel: LogLevel;
  shutdownGrace: number;
  http?: string | true;
  httpToken?: string;
  httpAllowedHosts?: string[];
  threads?: number;
  processes?: number;
  model?: "event-loop" | "threads";
  watch?: boolean;
}

export function addWorkerCommand(program: Command): void {
  program
    .command("worker")
    .description("run the handlers of an app: connect to every queue it declares and process messages")
    .requiredOption("-a, --app <module>", "app module: a file (./app.ts), a dotted path (example.example_usage) or a package; MODULE:name picks an export")
    .option("-b, --broker <url>", "default broker URL (else WQUEUE_BROKER_URL, else the app's, else sqlite://wqueue.db); schemes of registerBroker in the app work too")
    .option("-q, --queues <names>", "only these queues, comma-separated (a pattern such as tenant.* by the pattern as registered)")
    .option(
      "-c, --concurrency <n>",
      "messages fetched or running at once, across all queues; on threads at most the threads plus one per queue (the ready line shows the result)",
      positiveInt,
      DEFAULT_CONCURRENCY,
    )
    .option("--model <model>", "run every queue on this model, whatever the app says: event-loop or threads", model)
    .option("-t, --threads <n>", "run handlers on a pool of N worker threads (CPU-bound handlers); implies --model threads", positiveInt)
    .option("-p, --processes <n>", "run N worker processes, each with its own broker connections (and its own threads)", positiveInt)
    .option("--shutdown-grace <ms>", "on SIGTERM, how long in-flight handlers may run before their messages are given back (a second signal: at once, exit 130)", positiveInt, 30_000)
    .option("--http [address]", "serve /metrics, /healthz, /readyz and the dashboard (default 127.0.0.1:9464; a bare port binds loopback)")
    .option("--http-token <token>", "require this bearer token for /metrics, the dashboard API and replays (else WQUEUE_HTTP_TOKEN)")
    .option(
      "--http-allowed-hosts <names>",
      "DNS names the dashboard may be reached by, comma-separated (IP addresses and localhost always work; probes answer any name)",
      hostList,
    )
    .option("--watch", "restart the worker when a source file of the app's project changes, draining in-flight messages first (development)")
    .option("-l, --log-level <level>", `log level: ${LOG_LEVELS.join(", ")}`, logLevel, "info" as LogLevel)
    .action(async (flags: WorkerFlags) => runWorker(flags));
}

async function runWorker(flags: WorkerFlags): Promise<void> {
  const debug = flags.logLevel === "debug" || flags.logLevel === "trace";
  const logger = childLogger(createLogger(flags.logLevel));
  try {
    if (typeof flags.http === "string") parseAddress(flags.http); // before the app loads: a typo costs nothing
  } catch (error) {
    failAndExit(error, debug);
  }
  if (flags.watch && !process.env[WATCHED_CHILD_ENV]) {
    await watchWorker(flags, logger, debug);
    return;
  }
  if ((flags.processes ?? 1) > 1 && childIndex() === undefined) {
    await superviseWorkers(flags, logger, debug);
    return;
  }
  let server: Server | undefined;
  const closeServer = () =>
    new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections(); // dashboards keep connections alive
    });
  try {
    const { app, file } = await loadApp(flags.app);
    const worker = new Worker(app, {
      broker: flags.broker,
      queues: flags.queues?.split(",").map((q) => q.trim()).filter(Boolean),
      concurrency: flags.concurrency,
      shutdownGraceMs: flags.shutdownGrace,
      logger,
      appName: path.relative(process.cwd(), file) || file,
      model: flags.model ?? (flags.threads ? "threads" : undefined),
      threads: flags.threads,
      appModule: flags.app,
    });
    const stop = stopOnSignals(worker, closeServer, logger, debug);
    // A supervised child whose supervisor died drains and exits rather than running on alone.
    // So does the worker of `--watch` whose watcher died.
    stopWhenSupervisorGone(() => stop("SIGTERM"), childIndex() !== undefined || Boolean(process.env[WATCHED_CHILD_ENV]));
    // prom-client is an optional peer: without it /metrics answers 501, the rest of --http works.
    const prom = flags.http !== undefined || process.env[STATS_IPC_ENV] ? await loadPromClient() : undefined;
    if (flags.http !== undefined && !prom) logger.warn(`${PROM_CLIENT_MISSING}; the dashboard, /api/stats and the health routes work without it`);
    const registry = () =>
      prom &&
      createMetricsRegistry(
        {
          observer: worker.observer,
          inFlight: () => worker.inFlightBySubscription(),
          backlog: () => worker.backlog(),
          adaptiveLimits: () => worker.adaptiveLimits(),
        },
        prom,
      );
    // Bound before the worker starts: a bad or taken address fails before any message is taken,
    // and /readyz says "not started" until the worker consumes.
    if (flags.http !== undefined) {
      const address = flags.http === true ? DEFAULT_HTTP_ADDRESS : flags.http;
      const token = flags.httpToken ?? process.env.WQUEUE_HTTP_TOKEN;
      server = await startHttpServer({ address, token, allowedHosts: flags.httpAllowedHosts, observed: observeWorker(worker, registry()), logger });
      const bound = server.address();
      const where = typeof bound === "object" && bound ? `${bound.address}:${bound.port}` : address;
      logger.info({ http: where }, `http: dashboard${prom ? " and /metrics" : ""} on http://${where}/${token ? " (bearer token required)" : ""}`);
    }
    await worker.start();
    if (childIndex() !== undefined && process.env[STATS_IPC_ENV]) {
      answerStatsRequests({
        snapshot: () => statsSnapshot(worker),
        registry: registry(),
        readiness: () => worker.readiness(),
        setPaused: (queue, paused) => worker.setPaused(queue, paused),
      });
    }
  } catch (error) {
    failAndExit(error, debug);
  }
}
