import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import type { Command } from "commander";
import { ConfigError } from "../errors.js";
import { DEFAULT_HTTP_ADDRESS, parseAddress } from "../observability/http-server.js";
import type { QueueSnapshot, StatsSnapshot } from "../observability/stats-snapshot.js";
import { failAndExit } from "./fail.js";
import { positiveInt } from "./worker-command.js";

interface Flags {
  token?: string;
  interval: number;
  once?: boolean;
}

/** The worker's base URL from a URL, a HOST:PORT or a bare PORT (the forms --http takes). */
function baseUrl(address: string): string {
  if (/^https?:\/\//.test(address)) return address.replace(/\/+$/, "");
  const { host, port } = parseAddress(address, "stats");
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** GET with node:http rather than fetch, which refuses "bad ports" such as 1 before connecting. */
function get(url: URL, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === "https:" ? httpsGet : httpGet)(url, { headers, timeout: 10_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      response.on("error", reject);
    });
    request.on("timeout", () => request.destroy(Object.assign(new Error("no answer within 10 s"), { code: "ETIMEDOUT" })));
    request.on("error", reject);
  });
}

async function fetchStats(base: string, token: string | undefined): Promise<StatsSnapshot> {
  let answer: { status: number; body: string };
  try {
    answer = await get(new URL("/api/stats", base), token ? { authorization: `Bearer ${token}` } : {});
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const where = base.replace(/^https?:\/\//, "");
    if (code === "ECONNREFUSED") {
      throw new ConfigError(`nothing listens at ${base} (ECONNREFUSED): start the worker with --http ${where}, e.g. wqueue worker -a APP --http ${where}`);
    }
    throw new ConfigError(`cannot reach the worker at ${base}: ${(error as Error).message}`);
  }
  if (answer.status === 401) throw new ConfigError(`${base} needs a token: --token or WQUEUE_HTTP_TOKEN`);
  let body: (StatsSnapshot & { error?: string }) | undefined;
  try {
    body = JSON.parse(answer.body);
  } catch {
    body = undefined; // not a wqueue worker's answer
  }
  if (answer.status !== 200 || !body?.queues) {
    throw new ConfigError(`${base}/api/stats answered ${answer.status}${body?.error ? `: ${body.error}` : ", not a wqueue worker's stats"}`);
  }
  return body;
}

const num = (n: number | null) => (n === null ? "-" : n.toLocaleString("en", { maximumFractionDigits: 1 }));

/** The table `wqueue stats` prints: the dashboard's numbers, rates from the previous snapshot. */
export function formatStats(stats: StatsSnapshot, previous: StatsSnapshot | undefined): string {
  const seconds = previous ? (stats.time - previous.time) / 1000 : 0;
  const rate = (q: QueueSnapshot) => {
    const before = previous?.queues.find((p) => p.queue === q.queue && p.broker === q.broker);
    if (!before || seconds <= 0) return "-";
    return num((q.succeeded + q.failed - before.succeeded - before.failed) / seconds);
  };
  const header = ["queue", "msg/s", "received", "succeeded", "failed", "retried", "dead", "in flight", "backlog", "p50 ms", "p95 ms"];
  const rows = stats.queues.map((q) => [
    q.paused ? `${q.queue} (paused)` : q.queue,
    rate(q),
    num(q.received),
    num(q.succeeded),
    num(q.failed),
    num(q.retried),
    num(q.deadLettered),
    q.autoLimit === undefined ? num(q.inFlight) : `${num(q.inFlight)} (auto ${num(q.autoLimit)})`,
    num(q.backlog),
    num(q.p50Ms),
    num(q.p95Ms),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  const title = `model ${stats.model}, concurrency ${stats.concurrency}, ${stats.processes} process(es), pid ${stats.pid}, up ${stats.uptimeSeconds} s`;
  const failures = stats.recentFailures.slice(0, 5).map((f) => `  ${f.at.slice(11, 19)} ${f.queue} #${f.messageId} attempt ${f.attempt}: ${f.outcome}: ${f.error}`);
  const crons = (stats.crons ?? []).map((c) => `  ${c.name}: ${num(c.runs)} run(s), ${num(c.failed)} failed, ${num(c.skipped)} on other workers, ${num(c.missed)} missed`);
  return [
    title,
    "",
    line(header),
    ...rows.map(line),
    ...(crons.length ? ["", "cron (ticks run here):", ...crons] : []),
    ...(failures.length ? ["", "recent failures:", ...failures] : []),
  ].join("\n");
}

export function addStatsCommand(program: Command): void {
  program
    .command("stats")
    .description("show a running worker's numbers live in the terminal (the worker runs with --http)")
    .argument("[address]", "the worker's --http address: PORT, HOST:PORT or a URL", DEFAULT_HTTP_ADDRESS)
    .option("-t, --token <token>", "bearer token (else WQUEUE_HTTP_TOKEN)")
    .option("-i, --interval <ms>", "refresh interval", positiveInt, 1000)
    .option("--once", "print one snapshot and exit")
    .action(async (address: string, flags: Flags) => {
      const token = flags.token ?? process.env.WQUEUE_HTTP_TOKEN;
      try {
        const base = baseUrl(address);
        let previous: StatsSnapshot | undefined;
        for (;;) {
          const stats = await fetchStats(base, token);
          const text = formatStats(stats, previous);
          if (flags.once) {
            process.stdout.write(`${text}\n`);
            return;
          }
          process.stdout.write(`\x1b[2J\x1b[H${text}\n`);
          previous = stats;
          await new Promise((resolve) => setTimeout(resolve, flags.interval));
        }
      } catch (error) {
        failAndExit(error, false);
      }
    });
}
