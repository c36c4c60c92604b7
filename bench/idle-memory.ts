/**
 * `npm run bench:idle-memory`: the memory of an idle worker, as a user starts it, against an idle
 * BullMQ Worker on the same Redis, same run:
 *   (bullmq) `node bullmq-worker.mjs`: one BullMQ Worker with a no-op processor, concurrency 50;
 *   (wqueue) `wqueue worker -a app.ts`: the CLI (built: `npm run build`) loading a TypeScript app
 *            (tsx) with one no-op handler on the default Redis mode, concurrency 50.
 * Each process is started, waited for until it says it is ready, left idle for BENCH_IDLE_MS, and
 * its peak resident memory (VmHWM, Linux) is read before it is stopped. Rounds alternate which runs
 * first; the medians and the median of each round's wqueue / BullMQ ratio are reported.
 *
 *   npm run build && BENCH_ROUNDS=3 BENCH_IDLE_MS=5000 npm run bench:idle-memory
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { headline, machineLoad, median } from "./harness.js";
import { memoryMiB, startUntilReady, stopProcess } from "./process-stats.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 5000);
const REDIS = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const ROOT = path.resolve(import.meta.dirname, "..");
const TARGET = 1.0;

/** Kept inside the project, so that `wqueue` and `bullmq` resolve from its node_modules. */
const dir = mkdtempSync(path.join(ROOT, "bench/.idle-"));
const queue = `bench.idle.${randomUUID().slice(0, 8)}`;
writeFileSync(
  path.join(dir, "app.ts"),
  `import { WQueue } from "wqueue";
export const app = new WQueue({ broker: ${JSON.stringify(REDIS)} });
app.listenEvents(${JSON.stringify(queue)}, async (_message) => {}, { concurrency: 50 });
`,
);
writeFileSync(
  path.join(dir, "bullmq-worker.mjs"),
  `import { Worker } from "bullmq";
const url = new URL(${JSON.stringify(REDIS)});
const worker = new Worker(${JSON.stringify(`${queue}-bullmq`)}, async () => {}, { connection: { host: url.hostname, port: Number(url.port || 6379) }, concurrency: 50 });
worker.on("ready", () => console.log("ready"));
process.on("SIGTERM", () => worker.close().then(() => process.exit(0)));
`,
);

const cases = [
  { name: "BullMQ Worker (node bullmq-worker.mjs)", args: [path.join(dir, "bullmq-worker.mjs")], ready: /^ready/m },
  { name: "wqueue worker -a app.ts", args: [path.join(ROOT, "bin/wqueue.js"), "worker", "-a", path.join(dir, "app.ts")], ready: /ready: / },
];

async function measure(test: (typeof cases)[number]): Promise<number> {
  const child = await startUntilReady(test.name, test.args, dir, test.ready);
  try {
    await sleep(IDLE_MS);
    return memoryMiB(child.pid as number).peak;
  } finally {
    await stopProcess(child, test.name);
  }
}

try {
  for (const test of cases) await measure(test); // warm-up: disk caches, Redis connections
  const rss: number[][] = cases.map(() => []);
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    const got: number[] = [];
    for (const index of order) {
      got[index] = await measure(cases[index] as (typeof cases)[number]);
      rss[index]?.push(got[index] as number);
      process.stderr.write(`round ${round + 1} ${cases[index]?.name}: peak RSS ${(got[index] as number).toFixed(1)} MiB\n`);
    }
    ratios.push((got[1] as number) / (got[0] as number));
  }
  const ratio = median(ratios);
  const met = ratio <= TARGET;
  headline({ what: "idle worker peak RSS, wqueue worker -a app.ts / BullMQ Worker", value: ratio, unit: "x", target: `<= ${TARGET}x`, met });
  console.log(`### Idle memory: wqueue worker against BullMQ's Worker

Each process started, waited for until ready, idle for ${IDLE_MS} ms, then its peak RSS (VmHWM) read; after a warm-up,
${ROUNDS} rounds alternating which runs first. Node ${process.version}, Redis on loopback.

| process | peak RSS MiB (median) | range |
| --- | ---: | ---: |
${cases.map((test, index) => `| ${test.name} | ${median(rss[index] ?? []).toFixed(1)} | ${Math.min(...(rss[index] ?? [])).toFixed(1)} - ${Math.max(...(rss[index] ?? [])).toFixed(1)} |`).join("\n")}

- wqueue / BullMQ: ${ratio.toFixed(2)}x (target <= ${TARGET}x: ${met ? "met" : "NOT met"})

${machineLoad()}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
