/**
 * `npm run bench`: every bench in turn, each at a size that keeps the whole run to minutes, then
 * docs/benchmarks.md (summary table and each bench's own output) and docs/benchmarks.svg (the
 * headline ratios against their targets) written from what this run and earlier ones recorded.
 *
 * Each bench measures its own baseline in the same run and records its headline figures through
 * harness.ts `headline()`; this runner keeps them per bench in docs/benchmarks.json with the date,
 * the commit and the machine's load before and after it. A partial run (`BENCH_ONLY=redis,mqtt`)
 * replaces only those benches, so every row says when and under what load it was taken. Before
 * each bench, with none of ours running, the runner measures how busy the machine's CPUs are; a
 * bench that started on a machine busier than QUIET_BUSY is marked "not quiet" in the table: its
 * ratios may be skewed by whatever else ran, and should not be quoted.
 *
 *   npm run bench                                  # all benches (about 14 minutes on 2 cores)
 *   BENCH_ONLY=redis,bullmq,latency npm run bench  # some of them
 *
 * It builds the CLI first (some benches start \`wqueue worker\`) and starts the brokers that are not
 * running, as the test suite does (test/setup).
 */
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { ensureElasticmq } from "../test/setup/ensure-elasticmq.js";
import { ensureKafka } from "../test/setup/ensure-kafka.js";
import { ensureKinesis } from "../test/setup/ensure-kinesis.js";
import { ensureNats } from "../test/setup/ensure-nats.js";
import { ensurePostgres } from "../test/setup/ensure-postgres.js";
import { ensureRabbitmq } from "../test/setup/ensure-rabbitmq.js";
import { ensureRedis } from "../test/setup/ensure-redis.js";
import type { Headline } from "./harness.js";
import { benchmarkChart } from "./results-chart.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const RESULTS = path.join(ROOT, "docs/benchmarks.json");
const DOC = path.join(ROOT, "docs/benchmarks.md");
const CHART = path.join(ROOT, "docs/benchmarks.svg");
/**
 * Quiet: in the seconds before a bench starts (nothing of ours running), the machine's CPUs were busy
 * less than this share of the time. The load average cannot say it: it still counts the previous
 * bench for a minute after it ended.
 */
const QUIET_BUSY = Number(process.env.BENCH_QUIET_BUSY ?? 0.25);
const SAMPLE_MS = 3000;

interface Bench {
  name: string;
  script: string;
  /** Sizes for this run: the bench's own defaults are larger. */
  env: Record<string, string>;
  broker: () => Promise<void>;
}

const benches: Bench[] = [
  { name: "redis", script: "redis-list.ts", env: { BENCH_MESSAGES: "100000", BENCH_ROUNDS: "3" }, broker: ensureRedis },
  { name: "redis-reliable", script: "redis-reliable.ts", env: { BENCH_MESSAGES: "50000", BENCH_ROUNDS: "3" }, broker: ensureRedis },
  // Starts a Redis Cluster (3 masters) and a single Redis of its own.
  { name: "redis-cluster", script: "redis-cluster.ts", env: { BENCH_MESSAGES: "30000", BENCH_ROUNDS: "5" }, broker: async () => {} },
  { name: "batch", script: "batch.ts", env: { BENCH_MESSAGES: "50000", BENCH_ROUNDS: "3" }, broker: ensureRedis },
  { name: "bullmq", script: "redis-vs-bullmq.ts", env: { BENCH_MESSAGES: "20000", BENCH_ROUNDS: "3" }, broker: ensureRedis },
  { name: "many-queues", script: "many-queues.ts", env: { BENCH_MESSAGES: "20000", BENCH_QUEUES: "1000", BENCH_IDLE_MS: "10000" }, broker: ensureRedis },
  {
    name: "idle-queues",
    script: "idle-queues.ts",
    env: { BENCH_QUEUES: "100", BENCH_KINESIS_QUEUES: "10", BENCH_IDLE_MS: "10000" },
    broker: async () => {
      await Promise.all([ensureRedis(), ensureRabbitmq(), ensureNats(), ensureElasticmq(), ensureKinesis()]);
    },
  },
  { name: "idle-memory", script: "idle-memory.ts", env: { BENCH_ROUNDS: "3", BENCH_IDLE_MS: "5000" }, broker: ensureRedis },
  { name: "latency", script: "latency.ts", env: { BENCH_RATE: "500", BENCH_SECONDS: "10", BENCH_ROUNDS: "3" }, broker: ensureRedis },
  { name: "metrics", script: "metrics-overhead.ts", env: { BENCH_MESSAGES: "50000", BENCH_ROUNDS: "5" }, broker: ensureRedis },
  { name: "rabbitmq", script: "amqp.ts", env: { BENCH_MESSAGES: "20000", BENCH_ROUNDS: "3" }, broker: ensureRabbitmq },
  { name: "nats", script: "nats.ts", env: { BENCH_MESSAGES: "20000", BENCH_ROUNDS: "3" }, broker: ensureNats },
  { name: "mqtt", script: "mqtt.ts", env: { BENCH_MESSAGES: "20000", BENCH_ROUNDS: "3" }, broker: async () => {} }, // starts a Mosquitto of its own
  { name: "sqs", script: "sqs.ts", env: { BENCH_MESSAGES: "10000", BENCH_ROUNDS: "3" }, broker: ensureElasticmq },
  { name: "kafka", script: "kafka.ts", env: { BENCH_MESSAGES: "50000", BENCH_ROUNDS: "3" }, broker: ensureKafka },
  { name: "kinesis", script: "kinesis.ts", env: { BENCH_MESSAGES: "10000", BENCH_ROUNDS: "3" }, broker: ensureKinesis },
  { name: "postgres", script: "postgres.ts", env: { BENCH_MESSAGES: "5000", BENCH_ROUNDS: "3" }, broker: ensurePostgres },
  { name: "models", script: "models.ts", env: { BENCH_MESSAGES: "1000" }, broker: async () => {} },
  { name: "adaptive", script: "adaptive.ts", env: { BENCH_MESSAGES: "2000", BENCH_ROUNDS: "3" }, broker: async () => {} }, // in-memory queues
];

/** What docs/benchmarks.json keeps of one bench's last run. */
interface Recorded {
  name: string;
  command: string;
  date: string;
  commit: string;
  node: string;
  loadBefore: number;
  loadAfter: number;
  /** Share of all CPU time that was busy in the SAMPLE_MS before the bench started (0..1). */
  busyBefore: number;
  headlines: Headline[];
  /** The same bench's figures from the run before this one, to show whether they reproduce. */
  previous?: { date: string; values: Record<string, number> };
  output: string;
  failed?: string;
}

function commandOf(bench: Bench): string {
  return `${Object.entries(bench.env)
    .map(([key, value]) => `${key}=${value}`)
    .join(" ")} npm run bench:${bench.name}`.trim();
}

function commit(): string {
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "bench"], { cwd: ROOT, encoding: "utf8" }).trim();
    return dirty ? `${sha}+changes` : sha;
  } catch {
    return "unknown";
  }
}

/** Busy and total CPU time of all cores so far (/proc/stat, Linux), in clock ticks. */
function cpuTimes(): { busy: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** How busy the machine is without us: the share of CPU time busy over SAMPLE_MS, nothing of ours running. */
async function busyShare(): Promise<number> {
  const start = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  const end = cpuTimes();
  return (end.busy - start.busy) / Math.max(1, end.total - start.total);
}

/** Runs one bench as its own process; its stdout is the markdown section, its stderr passes through. */
async function run(bench: Bench, resultsFile: string): Promise<Recorded> {
  const busyBefore = await busyShare();
  const loadBefore = loadavg()[0] as number;
  process.stderr.write(`\n== bench:${bench.name} (CPUs ${(busyBefore * 100).toFixed(0)}% busy before it, load ${loadBefore.toFixed(2)})\n`);
  const child = spawn(process.execPath, ["--import", "tsx", path.join("bench", bench.script)], {
    cwd: ROOT,
    env: { ...process.env, ...bench.env, BENCH_RESULTS: resultsFile, BENCH_NAME: bench.name },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk;
    process.stderr.write(chunk);
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const lines = existsSync(resultsFile) ? readFileSync(resultsFile, "utf8").split("\n").filter(Boolean) : [];
  const headlines = lines.map((line) => JSON.parse(line) as Headline & { bench: string }).filter((h) => h.bench === bench.name);
  return {
    name: bench.name,
    command: commandOf(bench),
    date: new Date().toISOString().slice(0, 16).replace("T", " "),
    commit: commit(),
    node: process.version,
    loadBefore,
    loadAfter: loadavg()[0] as number,
    busyBefore,
    headlines: headlines.map(({ what, value, unit, target, met }) => ({ what, value, unit, target, met })),
    output: output.trim(),
    ...(code === 0 ? {} : { failed: `exit code ${code}` }),
  };
}

const shown = (h: Headline) => (h.unit === "x" ? `${h.value.toFixed(2)}x` : h.unit === "%" ? `${h.value.toFixed(1)} %` : `${h.value.toFixed(1)} ${h.unit}`);
const quiet = (r: Recorded) => r.busyBefore < QUIET_BUSY;

function render(recorded: Recorded[]): string {
  const rows = recorded.flatMap((r) => {
    const when = `${r.date} UTC, ${r.commit}, CPUs ${(r.busyBefore * 100).toFixed(0)}% busy before${quiet(r) ? "" : " (**not quiet**)"}, load ${r.loadBefore.toFixed(2)} → ${r.loadAfter.toFixed(2)}`;
    if (r.failed) return [`| bench:${r.name} | failed (${r.failed}) | | | ${when} |`];
    return r.headlines.map((h) => {
      const before = r.previous?.values[h.what];
      const was = before === undefined ? "" : ` | ${shown({ ...h, value: before })}`;
      return `| ${h.what} | ${shown(h)}${was || " | "} | ${h.target} | ${h.met ? "met" : "**not met**"} | ${when} |`;
    });
  });
  const sections = recorded.map((r) => `## bench:${r.name}\n\n\`${r.command}\` on ${r.date} UTC (commit ${r.commit}, Node ${r.node}, ${cpus().length} cores).\n\n${r.failed ? `Failed: ${r.failed}.\n\n` : ""}${r.output}\n`);
  return `# Benchmarks

Written by \`npm run bench\` (bench/run-all.ts) from docs/benchmarks.json: do not edit by hand.
Every figure is a ratio against a baseline measured in the same run of the same bench (the raw
client's own loop, BullMQ's worker, the worker without the feature), because this 2-core machine is
shared and absolute numbers move with its load. Before each bench the runner measures, for
${SAMPLE_MS / 1000} s with nothing of ours running, how busy the CPUs are; a row whose bench started with them
${QUIET_BUSY * 100}% busy or more is marked **not quiet**: do not quote it. The load average (1 min) is shown too,
but it still counts the previous bench for a minute. Each bench's own output (medians, ranges,
CPU per message, the rounds it ran) follows the table. "The run before" is the same bench's figure
from the previous \`npm run bench\`: where the two differ much, neither is a figure to rely on.

![headline ratios against their targets](benchmarks.svg)

| figure | measured | the run before | target | | when, commit, how busy before, load before → after |
|---|---:|---:|---|---|---|
${rows.join("\n")}

The concurrency models' full tables and chart: [benchmarks-models.md](benchmarks-models.md),
[models.svg](models.svg) (written by \`bench:models\`).

${sections.join("\n")}`;
}

async function main(): Promise<void> {
  const only = process.env.BENCH_ONLY?.split(",").map((name) => name.trim());
  const unknown = only?.filter((name) => !benches.some((bench) => bench.name === name)) ?? [];
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: no bench named ${unknown.join(", ")} (benches: ${benches.map((b) => b.name).join(", ")})`);
  const chosen = benches.filter((bench) => !only || only.includes(bench.name));
  // The benches that start `wqueue worker` run the built CLI.
  execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });
  process.stderr.write(`starting the brokers of ${chosen.map((b) => b.name).join(", ")} where they are not running\n`);
  for (const bench of chosen) await bench.broker();

  const previous: Recorded[] = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, "utf8")) : [];
  const scratch = mkdtempSync(path.join(tmpdir(), "wqueue-bench-"));
  const fresh: Recorded[] = [];
  try {
    for (const bench of chosen) fresh.push(await run(bench, path.join(scratch, "results.jsonl")));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  // In the benches' own order: this run's results, and earlier ones for the benches not run now.
  const recorded = benches
    .map((bench) => {
      const before = previous.find((r) => r.name === bench.name);
      const now = fresh.find((r) => r.name === bench.name);
      if (!now) return before;
      if (!before || before.failed) return now;
      return { ...now, previous: { date: before.date, values: Object.fromEntries(before.headlines.map((h) => [h.what, h.value])) } };
    })
    .filter((r): r is Recorded => r !== undefined);
  writeFileSync(RESULTS, `${JSON.stringify(recorded, null, 2)}\n`);
  writeFileSync(DOC, render(recorded));
  writeFileSync(CHART, benchmarkChart(recorded.flatMap((r) => (r.failed ? [] : r.headlines.filter((h) => h.unit === "x").map((h) => ({ ...h, quiet: quiet(r) }))))));
  process.stderr.write(`\nwrote ${path.relative(ROOT, DOC)}, ${path.relative(ROOT, CHART)} and ${path.relative(ROOT, RESULTS)}\n`);
  for (const r of fresh) {
    for (const h of r.headlines) process.stdout.write(`${h.met ? "met    " : "NOT MET"}  ${h.what}: ${shown(h)} (target ${h.target})${quiet(r) ? "" : "  [not quiet]"}\n`);
    if (r.failed) process.stdout.write(`FAILED   bench:${r.name}: ${r.failed}\n`);
  }
  if (fresh.some((r) => r.failed)) process.exitCode = 1;
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
