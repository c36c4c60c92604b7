import type { Command } from "commander";
import { ConfigError } from "../errors.js";
import type { QueueSnapshot, StatsSnapshot } from "../observability/stats-snapshot.js";
import { failAndExit } from "./fail.js";
import { positiveInt } from "./worker-command.js";

interface Flags {
  token?: string;
  interval: number;
  once?: boolean;
}

async function fetchStats(base: string, token: string | undefined): Promise<StatsSnapshot> {
  let response: Response;
  try {
    response = await fetch(new URL("/api/stats", base), { headers: token ? { authorization: `Bearer ${token}` } : {} });
  } catch (error) {
    throw new ConfigError(`cannot reach the worker at ${base}: ${(error as Error).cause ?? (error as Error).message}`);
  }
  if (response.status === 401) throw new ConfigError(`${base} needs a token: --token or WQUEUE_HTTP_TOKEN`);
  if (!response.ok) throw new ConfigError(`${base}/api/stats answered ${response.status}`);
  return (await response.json()) as StatsSnapshot;
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
    q.queue,
    rate(q),
    num(q.received),
    num(q.succeeded),
    num(q.failed),
    num(q.retried),
    num(q.deadLettered),
    num(q.inFlight),
    num(q.backlog),
    num(q.p50Ms),
    num(q.p95Ms),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  const title = `model ${stats.model}, concurrency ${stats.concurrency}, ${stats.processes} process(es), pid ${stats.pid}, up ${stats.uptimeSeconds} s`;
  const failures = stats.recentFailures.slice(0, 5).map((f) => `  ${f.at.slice(11, 19)} ${f.queue} #${f.messageId} attempt ${f.attempt}: ${f.outcome}: ${f.error}`);
  return [title, "", line(header), ...rows.map(line), ...(failures.length ? ["", "recent failures:", ...failures] : [])].join("\n");
}

export function addStatsCommand(program: Command): void {
  program
    .command("stats")
    .description("show a running worker's numbers live in the terminal (the worker runs with --http)")
    .argument("[address]", "the worker's --http address", "127.0.0.1:9464")
    .option("-t, --token <token>", "bearer token (else WQUEUE_HTTP_TOKEN)")
    .option("-i, --interval <ms>", "refresh interval", positiveInt, 1000)
    .option("--once", "print one snapshot and exit")
    .action(async (address: string, flags: Flags) => {
      const base = /^https?:\/\//.test(address) ? address : `http://${address}`;
      const token = flags.token ?? process.env.WQUEUE_HTTP_TOKEN;
      try {
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
