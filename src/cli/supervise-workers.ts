import type { ChildProcess } from "node:child_process";
import type { Server } from "node:http";
import { resolveDefaultBrokerUrl } from "../app/WQueue.js";
import { BrokerSet } from "../brokers/BrokerSet.js";
import { deadLetterTarget } from "../dead-letters/dead-letters.js";
import type { Logger } from "../log/logger.js";
import { DEFAULT_HTTP_ADDRESS, startHttpServer } from "../observability/http-server.js";
import { loadPromClient, PROM_CLIENT_MISSING } from "../observability/prom-client.js";
import { childArgv } from "../supervisor/child.js";
import { observeChildren, STATS_IPC_ENV } from "../supervisor/stats-ipc.js";
import { superviseProcesses } from "../supervisor/supervise.js";
import { failAndExit } from "./fail.js";
import { loadApp } from "../app/load-app.js";

/** The worker flags that belong to the supervisor: the HTTP endpoint is served once, here. */
function withoutHttpFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--http-token" || arg === "--http-allowed-hosts") i += 1;
    else if (arg === "--http") {
      if (argv[i + 1] !== undefined && !(argv[i + 1] as string).startsWith("-")) i += 1; // its optional address
    } else if (!/^--http(-token|-allowed-hosts)?=/.test(arg)) out.push(arg);
  }
  return out;
}

/**
 * `wqueue worker --processes N`: run N children (each a full worker) under the supervisor, and
 * with --http serve one endpoint for all of them. The app is loaded here too (no connection is
 * opened until a dead-letter request comes), so the dashboard can list and replay dead letters.
 */
export async function superviseWorkers(
  flags: { app: string; broker?: string; processes?: number; http?: string | true; httpToken?: string; httpAllowedHosts?: string[] },
  logger: Logger,
  debug: boolean,
): Promise<void> {
  const children = new Map<number, ChildProcess>();
  const http = flags.http;
  let server: Server | undefined;
  let brokers: BrokerSet | undefined;
  try {
    const { app } = await loadApp(flags.app);
    // Bound before any child starts: a bad or taken address fails before a message is taken.
    if (http !== undefined) {
      const openBrokers = new BrokerSet(resolveDefaultBrokerUrl(app, flags.broker), app.options.brokers);
      brokers = openBrokers;
      const observed = observeChildren(children, (queue) => deadLetterTarget(app, openBrokers, queue));
      const address = http === true ? DEFAULT_HTTP_ADDRESS : http;
      const token = flags.httpToken ?? process.env.WQUEUE_HTTP_TOKEN;
      server = await startHttpServer({ address, token, allowedHosts: flags.httpAllowedHosts, observed, logger });
      const bound = server.address();
      const where = typeof bound === "object" && bound ? `${bound.address}:${bound.port}` : address;
      const prom = await loadPromClient();
      if (!prom) logger.warn(`${PROM_CLIENT_MISSING}; the dashboard, /api/stats and the health routes work without it`);
      logger.info({ http: where }, `http: dashboard${prom ? " and /metrics" : ""} for all ${flags.processes} processes on http://${where}/`);
    }
    const code = await superviseProcesses({
      processes: flags.processes as number,
      argv: withoutHttpFlags(childArgv(process.argv.slice(2))),
      logger,
      env: http === undefined ? process.env : { ...process.env, [STATS_IPC_ENV]: "1" },
      onChild: (index, child) => children.set(index, child),
    });
    server?.closeAllConnections();
    server?.close();
    await brokers?.close();
    process.exit(code);
  } catch (error) {
    failAndExit(error, debug);
  }
}
