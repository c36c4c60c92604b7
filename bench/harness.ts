import { appendFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";

/**
 * What the adapter-vs-raw-client benchmarks (amqp, nats, sqs, kinesis) share: timing one case,
 * running the cases in interleaved rounds after a warm-up, and the table rows of their medians.
 * Every bench prints machineLoad() with its figures.
 */

/** Taken when the bench imports this module, before it measures anything. */
const loadBefore = loadavg();
const loads = (values: number[]) => values.map((value) => value.toFixed(2)).join(" / ");

/**
 * The machine's load average (1 / 5 / 15 min) when the bench started and now, and its cores: a
 * figure taken while something else loaded the machine is not comparable with one taken on a quiet one.
 */
export function machineLoad(): string {
  return `Machine load (loadavg 1 / 5 / 15 min, ${cpus().length} cores): ${loads(loadBefore)} before, ${loads(loadavg())} after.`;
}

/** msgs/s, and this process's CPU time per message (user + system, µs): the client's own cost. */
export interface Sample {
  rate: number;
  cpuMicros: number;
}

export const format = (rate: number) => Math.round(rate).toLocaleString("en-US");
export const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] as number;

/** Times `consume`, which handles `count` messages: wall-clock rate and this process's CPU per message. */
export async function timed(count: number, consume: () => Promise<void>): Promise<Sample> {
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await consume();
  const used = process.cpuUsage(cpu);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { rate: count / seconds, cpuMicros: (used.user + used.system) / count };
}

/**
 * One unrecorded `warmUp` pass of every case, then `rounds` rounds of every case in turn, each
 * round starting with the next case (so the machine's changing load falls on all alike); each
 * sample is reported on stderr. Returns the samples per case.
 */
export async function interleavedRounds<C extends { name: string }>(
  cases: C[],
  rounds: number,
  warmUp: (test: C) => Promise<unknown>,
  measure: (test: C) => Promise<Sample>,
): Promise<Sample[][]> {
  for (const test of cases) await warmUp(test);
  const samples: Sample[][] = cases.map(() => []);
  for (let round = 1; round <= rounds; round += 1) {
    // Each round starts with the next case, so no case always runs first (or always after the same one).
    const order = cases.map((_, i) => (i + round - 1) % cases.length);
    for (const index of order) {
      const test = cases[index] as C;
      const sample = await measure(test);
      samples[index]?.push(sample);
      process.stderr.write(`round ${round} ${test.name}: ${format(sample.rate)} msgs/s, ${sample.cpuMicros.toFixed(1)} µs CPU/msg\n`);
    }
  }
  return samples;
}

/** The median rate of each case, and its table row `| name | median | min - max | median CPU |`. */
export function summarize(cases: { name: string }[], samples: Sample[][]): { medians: number[]; rows: string[] } {
  const rates = samples.map((values) => values.map((sample) => sample.rate));
  const rows = cases.map(({ name }, index) => {
    const values = rates[index] ?? [];
    const cpu = median((samples[index] ?? []).map((sample) => sample.cpuMicros)).toFixed(1);
    return `| ${name} | ${format(median(values))} | ${format(Math.min(...values))} - ${format(Math.max(...values))} | ${cpu} |`;
  });
  return { medians: rates.map(median), rows };
}

/** Resolves as `promise` does, or rejects naming `what` once `ms` have passed without it. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One headline figure of a bench, with its target, for `npm run bench`'s summary table and chart. */
export interface Headline {
  what: string;
  value: number;
  /** How `value` reads: a ratio ("x"), a cost in percent, a time, or a size. */
  unit: "x" | "%" | "µs" | "ms" | "MiB";
  /** As written in the table, e.g. ">= 0.8x". */
  target: string;
  met: boolean;
}

/**
 * Records a headline figure: appended as one JSON line to the file named by $BENCH_RESULTS, which
 * `npm run bench` (bench/run-all.ts) sets; a bench run on its own just prints its own table.
 */
export function headline(figure: Headline): void {
  const file = process.env.BENCH_RESULTS;
  if (file) appendFileSync(file, `${JSON.stringify({ bench: process.env.BENCH_NAME ?? "", ...figure })}\n`);
}

/** `headline` for the common case: a ratio that must reach at least `least`. Returns "1.23x (target >= 0.8x: met)". */
export function ratioAtLeast(what: string, value: number, least: number): string {
  const met = value >= least;
  headline({ what, value, unit: "x", target: `>= ${least}x`, met });
  return `${value.toFixed(2)}x (target >= ${least}x: ${met ? "met" : "NOT met"})`;
}
