// Pushes random {"n": N} messages to `test_bench.sha`.
//   node --import tsx test_bench/producer.ts --count 2000 --min 1000 --max 10000 --broker redis://127.0.0.1:6379
import { Command } from "commander";
import { WQueue } from "wqueue";
import { createProgress } from "./progress.js";

export interface ProduceOptions {
  count: number;
  min: number;
  max: number;
  sleepMs: number;
  broker?: string;
  seed?: number;
  /** Where progress goes (a bar on a terminal, plain lines otherwise); none without. */
  progress?: NodeJS.WriteStream;
}

/** A small seeded generator (mulberry32) so a bench run can be repeated with the same work. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function produce(options: ProduceOptions): Promise<{ totalRounds: number }> {
  const app = new WQueue({ broker: options.broker });
  const random = options.seed === undefined ? Math.random : seededRandom(options.seed);
  const bar = options.progress ? createProgress("producing", options.count, options.progress) : undefined;
  let totalRounds = 0;
  try {
    for (let i = 0; i < options.count; i++) {
      const n = options.min + Math.floor(random() * (options.max - options.min + 1));
      totalRounds += n;
      await app.publish("test_bench.sha", { n });
      bar?.increment();
      if (options.sleepMs > 0) await new Promise((resolve) => setTimeout(resolve, options.sleepMs));
    }
  } finally {
    bar?.stop();
    await app.close();
  }
  return { totalRounds };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const flags = new Command("producer")
    .option("-n, --count <n>", "messages to push", Number, 100)
    .option("--min <n>", "smallest N", Number, 1000)
    .option("--max <n>", "largest N", Number, 10000)
    .option("--sleep <ms>", "pause between pushes", Number, 0)
    .option("-b, --broker <url>", "broker URL (else WQUEUE_BROKER_URL, else sqlite://wqueue.db)")
    .option("--seed <n>", "seed for repeatable N values", Number)
    .parse()
    .opts<{ count: number; min: number; max: number; sleep: number; broker?: string; seed?: number }>();
  await produce({ ...flags, sleepMs: flags.sleep, progress: process.stderr });
}
