/**
 * The concurrency models on the test bench's work, same machine, same run (`npm run bench:models`):
 *
 *   CPU-bound: BENCH_MESSAGES (default 2,000) messages, each chainedSha256(10,000 rounds) of a
 *   fixed per-message seed, on the event loop, threads 1, 2 and 4, and processes 2 x 1 (two
 *   supervised CLI workers, one message at a time each), all through the embedded SQLite broker,
 *   in BENCH_PASSES (default 3) interleaved passes so that the machine's changing load falls on
 *   every model alike.
 *   Reported: messages/s, speed-up over the event loop, cores busy (CPU time / wall time, measured)
 *   and CPU efficiency = speed-up / cores busy.
 *
 *   IO-bound: a handler that awaits 20 ms, on the event loop at concurrency 1, 10 and 100.
 *
 *   Dispatch: the thread runner alone (no broker) on a no-op handler, against the event loop
 *   runner and piscina alone: wall time per message with the pool kept busy, and main-thread busy
 *   time per message (median of three rounds).
 *
 * Each measurement starts once the workers are up (threads loaded, children ready): the messages
 * are published then, and the clock stops when the last handler has reported. Results go to
 * docs/benchmarks-models.md and docs/models.svg. Needs the build (processes run dist/): npm run build.
 *
 *   npm run bench:models
 *   BENCH_MESSAGES=200 npm run bench:models       # a quick run
 *   BENCH_PASSES=1 npm run bench:models           # the models one after the other, once
 */
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { Piscina } from "piscina";
import { pino } from "pino";
import type { RunnerModel } from "../src/runners/create-runner.js";
import { EventLoopRunner } from "../src/runners/EventLoopRunner.js";
import type { Runner } from "../src/runners/Runner.js";
import { ThreadPoolRunner } from "../src/runners/ThreadPoolRunner.js";
import { publish, ROOT, startInProcess, startSupervisor } from "../test/runners/harness.js";
import { headline } from "./harness.js";
import { cpuSeconds } from "./process-stats.js";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
/** CPU-bound passes, each running every model on MESSAGES / PASSES messages. */
const PASSES = Number(process.env.BENCH_PASSES ?? 3);
const ROUNDS = 10_000;
const IO_MS = 20;
const DIST = path.join(ROOT, "dist/index.js");
if (!existsSync(DIST)) {
  console.error("bench:models needs the build (the processes model runs dist/): npm run build");
  process.exit(1);
}
const dir = mkdtempSync(path.join(tmpdir(), "wqueue-bench-models-"));
const quiet = pino({ level: "warn" });
const cores = availableParallelism();
const loadAtStart = loadavg()[0] ?? 0;

/** An app with one queue; its handler appends "x\n" to DONE, so any thread or process can report. */
function benchApp(name: string, queue: string, handler: string): { file: string; done: string } {
  const done = path.join(dir, `${name}.done`);
  writeFileSync(done, "");
  const file = path.join(dir, `${name}.ts`);
  writeFileSync(
    file,
    `import { appendFileSync } from "node:fs";
import { WQueue } from ${JSON.stringify(pathToFileURL(DIST).href)};
import { chainedSha256 } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "test_bench/sha.ts")).href)};
export const app = new WQueue();
const done = () => appendFileSync(${JSON.stringify(done)}, "x\\n");
app.listenEvents(${JSON.stringify(queue)}, ${handler});
`,
  );
  return { file, done };
}

const doneCount = (file: string) => statSync(file).size / 2;

async function untilDone(file: string, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (doneCount(file) < count) {
    if (Date.now() > deadline) throw new Error(`timed out: ${doneCount(file)} of ${count} messages handled`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Measured {
  name: string;
  messages: number;
  seconds: number;
  perSecond: number;
  /** CPU seconds / wall seconds over the measured span. */
  coresBusy: number;
}

const shaHandler = `(m) => { chainedSha256(m.body.n, "wqueue-bench-" + m.body.i); done(); }`;
const shaBodies = (count: number, from = 0) => Array.from({ length: count }, (_, i) => ({ i: from + i, n: ROUNDS }));
/** Generous: the slowest model at a tenth of the event loop's speed. */
const timeoutFor = (count: number) => 60_000 + count * 250;

/** A model in this process: the real Worker on that model, as `wqueue worker --model M --threads N` runs it (harness.ts). */
async function inProcess(name: string, model: RunnerModel, queue: string, handler: string, bodies: unknown[], concurrency = 10): Promise<Measured> {
  const { file, done } = benchApp(name.replace(/\W+/g, "-"), queue, handler);
  const broker = `sqlite://${path.join(dir, `${name.replace(/\W+/g, "-")}.db`)}`;
  const worker = await startInProcess({ appFile: file, broker, model, concurrency, logger: quiet });
  try {
    const cpu = process.cpuUsage();
    const start = performance.now();
    await publish(broker, queue, bodies);
    await untilDone(done, bodies.length, timeoutFor(bodies.length));
    const seconds = (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpu);
    return result(name, bodies.length, seconds, (used.user + used.system) / 1e6);
  } finally {
    await worker.stop(5000);
  }
}

/** Processes P x 1: `superviseProcesses` forking the built CLI, each child one message at a time. */
async function processes(name: string, count: number, bodies: unknown[]): Promise<Measured> {
  const { file, done } = benchApp(name.replace(/\W+/g, "-"), "bench.sha", shaHandler);
  const broker = `sqlite://${path.join(dir, "processes.db")}`;
  const supervisor = startSupervisor(count, ["worker", "-a", file, "--broker", broker, "-c", "1"]);
  try {
    await waitForLines(supervisor.lines, (line) => line.includes('"msg":"ready:'), count, 60_000);
    const pids = [supervisor.child.pid as number, ...supervisor.childPids()];
    const cpu = cpuSeconds(pids);
    const start = performance.now();
    await publish(broker, "bench.sha", bodies);
    await untilDone(done, bodies.length, timeoutFor(bodies.length));
    const seconds = (performance.now() - start) / 1000;
    return result(name, bodies.length, seconds, cpuSeconds(pids) - cpu);
  } finally {
    supervisor.child.kill("SIGTERM");
    await supervisor.exited;
  }
}

async function waitForLines(lines: string[], match: (line: string) => boolean, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (lines.filter(match).length < count) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} ready workers: ${lines.slice(-5).join(" | ")}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function result(name: string, messages: number, seconds: number, cpu: number): Measured {
  const measured = { name, messages, seconds, perSecond: messages / seconds, coresBusy: cpu / seconds };
  console.log(`  ${name.padEnd(22)} ${measured.perSecond.toFixed(1).padStart(8)} msg/s  ${seconds.toFixed(2)} s  cores busy ${measured.coresBusy.toFixed(2)}`);
  return measured;
}

/** The runner alone on a no-op handler: µs per message with `inFlight` runs outstanding. */
async function dispatch(name: string, runner: Runner, inFlight: number, count: number): Promise<{ name: string; wallUs: number; mainUs: number }> {
  await runner.start?.();
  const data = { id: "1", queue: "noop", body: Buffer.from('{"n":1}'), headers: {}, key: undefined, attempt: 1 };
  const signal = new AbortController().signal;
  const drive = async (total: number) => {
    let started = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (started < total) {
          started += 1;
          await runner.run("default/noop", data, signal);
        }
      }),
    );
  };
  await drive(Math.min(5000, count)); // warm-up: JIT, and the threads' first messages
  const rounds: { wallUs: number; mainUs: number }[] = [];
  for (let round = 0; round < 3; round++) {
    const elu = performance.eventLoopUtilization();
    const start = performance.now();
    await drive(count);
    rounds.push({ wallUs: ((performance.now() - start) * 1000) / count, mainUs: (performance.eventLoopUtilization(elu).active * 1000) / count });
  }
  await runner.close();
  // The median round: single rounds on a shared machine are noisy.
  const { wallUs, mainUs } = rounds.sort((a, b) => a.wallUs - b.wallUs)[1] as { wallUs: number; mainUs: number };
  console.log(`  ${name.padEnd(34)} ${wallUs.toFixed(1).padStart(6)} µs/msg wall, ${mainUs.toFixed(1).padStart(6)} µs/msg main thread busy`);
  return { name, wallUs, mainUs };
}

/** Piscina alone with the runner's pool settings and an echo task: the floor under the thread runner. */
async function piscinaFloor(threads: number, tasksPerThread: number, inFlight: number, count: number) {
  const echo = path.join(dir, "echo.mjs");
  writeFileSync(echo, "export default (task) => ({ type: 'ack', id: task.id });\n");
  const pool = new Piscina({ filename: pathToFileURL(echo).href, minThreads: threads, maxThreads: threads, concurrentTasksPerWorker: tasksPerThread, atomics: "sync", recordTiming: false });
  const runner: Runner = {
    model: "piscina",
    run: (_id, data) => {
      const body = new Uint8Array(data.body.byteLength);
      body.set(data.body);
      return pool.run({ id: data.id, body }, { transferList: [body.buffer] });
    },
    close: () => pool.destroy(),
  };
  return dispatch(`piscina alone, threads ${threads} (${tasksPerThread} per thread), ${inFlight} in flight`, runner, inFlight, count);
}

function noopRunners() {
  const { file } = benchApp("noop", "noop", "() => {}");
  const settings = { format: "json" as const };
  return {
    eventLoop: () => new EventLoopRunner(new Map([["default/noop", { handler: () => {}, ...settings }]])),
    threads: (threads: number, tasksPerThread: number) =>
      new ThreadPoolRunner({ threads, tasksPerThread, appModule: file, subscriptions: new Map([["default/noop", settings]]) }),
  };
}

console.log(
  `bench:models: ${MESSAGES} messages x chainedSha256(${ROUNDS.toLocaleString("en")}), ${cores} cores (${cpus()[0]?.model ?? "?"}), ` +
    `Node ${process.version}, load average ${loadAtStart.toFixed(2)}`,
);
try {
  console.log(`CPU-bound (SQLite broker), ${PASSES} interleaved passes:`);
  const models: [string, (bodies: unknown[]) => Promise<Measured>][] = [
    ["event loop", (bodies) => inProcess("event loop", { kind: "event-loop" }, "bench.sha", shaHandler, bodies)],
    ...[1, 2, 4].map(
      (threads) =>
        [`threads ${threads}`, (bodies: unknown[]) => inProcess(`threads ${threads}`, { kind: "threads", threads }, "bench.sha", shaHandler, bodies)] as [
          string,
          (bodies: unknown[]) => Promise<Measured>,
        ],
    ),
    ["processes 2 x 1", (bodies) => processes("processes 2 x 1", 2, bodies)],
  ];
  // Every pass runs every model on its share of the messages, so a change in the machine's load
  // during the run weighs on all models alike; the figures add the passes up.
  const passes: Measured[][] = [];
  const share = Math.ceil(MESSAGES / PASSES);
  for (let pass = 0; pass < PASSES; pass++) {
    const bodies = shaBodies(share, pass * share);
    const measured: Measured[] = [];
    for (const [, run] of models) measured.push(await run(bodies));
    passes.push(measured);
  }
  const cpu = models.map(([name], m) => {
    const runs = passes.map((measured) => measured[m] as Measured);
    const messages = runs.reduce((sum, r) => sum + r.messages, 0);
    const seconds = runs.reduce((sum, r) => sum + r.seconds, 0);
    const cpuSeconds = runs.reduce((sum, r) => sum + r.coresBusy * r.seconds, 0);
    return { name, messages, seconds, perSecond: messages / seconds, coresBusy: cpuSeconds / seconds };
  });
  console.log("  all passes:");
  for (const m of cpu) console.log(`  ${m.name.padEnd(22)} ${m.perSecond.toFixed(1).padStart(8)} msg/s  cores busy ${m.coresBusy.toFixed(2)}`);

  console.log(`IO-bound (handler awaits ${IO_MS} ms, event loop, SQLite broker):`);
  const io: Measured[] = [];
  for (const concurrency of [1, 10, 100]) {
    const count = Math.min(MESSAGES * 2, Math.max(50, Math.round((MESSAGES / 20) * concurrency)));
    const ioBodies = Array.from({ length: count }, (_, i) => ({ i }));
    const handler = `async () => { await new Promise((resolve) => setTimeout(resolve, ${IO_MS})); done(); }`;
    io.push(await inProcess(`concurrency ${concurrency}`, { kind: "event-loop" }, "bench.io", handler, ioBodies, concurrency));
  }

  console.log("Dispatch (runner only, no-op handler, no broker):");
  const runners = noopRunners();
  const count = Math.max(5000, MESSAGES * 10);
  const base = await dispatch("event loop, 10 in flight", runners.eventLoop(), 10, count);
  const pools = [
    await dispatch("threads 2 (1 per thread), 4 in flight", runners.threads(2, 1), 4, count),
    await dispatch("threads 2 (4 per thread), 16 in flight", runners.threads(2, 4), 16, count),
    await piscinaFloor(2, 1, 4, count),
    await piscinaFloor(2, 4, 16, count),
  ];

  writeReport(cpu, io, base, pools);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

function writeReport(
  cpu: Measured[],
  io: Measured[],
  base: { wallUs: number },
  pools: { name: string; wallUs: number; mainUs: number }[],
): void {
  const eventLoop = cpu[0] as Measured;
  const speedUp = (m: Measured) => m.perSecond / eventLoop.perSecond;
  /** Cores the model sets out to use: 1 for the event loop, else its threads or processes, at most the machine's. */
  const coresUsed = (m: Measured) => Math.min(cores, Number(/\d+/.exec(m.name)?.[0] ?? 1));
  /** Messages per CPU-second, against the event loop's: the model's own waste, whatever the machine's load. */
  const perCpu = (m: Measured) => m.perSecond / m.coresBusy / (eventLoop.perSecond / eventLoop.coresBusy);
  const row = (m: Measured) =>
    `| ${m.name} | ${m.perSecond.toFixed(1)} | ${speedUp(m).toFixed(2)}x | ${coresUsed(m)} | ${(speedUp(m) / coresUsed(m)).toFixed(2)} | ${m.coresBusy.toFixed(2)} | ${perCpu(m).toFixed(2)} | ${(perCpu(m) * coresUsed(m)).toFixed(2)}x |`;
  const ioBase = io[0] as Measured;
  const get = (name: string) => cpu.find((m) => m.name === name) as Measured;
  const targets = [
    ["threads 2 >= 1.8x the event loop", speedUp(get("threads 2")), 1.8, "x"],
    ["processes 2 x 1 >= 1.8x the event loop", speedUp(get("processes 2 x 1")), 1.8, "x"],
    ["IO-bound concurrency 100 >= 50x concurrency 1", (io[2] as Measured).perSecond / ioBase.perSecond, 50, "x"],
    ["thread dispatch overhead <= 10 µs/msg (1 per thread)", (pools[0]?.wallUs ?? 0) - base.wallUs, -10, " µs"],
    ["  of which the runner's own, over piscina alone", (pools[0]?.wallUs ?? 0) - (pools[2]?.wallUs ?? 0), -10, " µs"],
  ] as const;
  const verdict = (value: number, target: number) => (target < 0 ? value <= -target : value >= target) ? "met" : "**missed**";
  for (const [name, value, target, unit] of targets) {
    headline({ what: name.trim(), value, unit: unit.trim() as "x" | "µs", target: target < 0 ? `<= ${-target}${unit}` : `>= ${target}${unit}`, met: verdict(value, target) === "met" });
  }
  const markdown = `# Benchmarks: concurrency models

Produced by \`npm run bench:models\` (bench/models.ts) on ${new Date().toISOString().slice(0, 10)}: ${cores} cores (${cpus()[0]?.model ?? "?"}),
Node ${process.version}, load average ${loadAtStart.toFixed(2)} when it started (the machine is shared: figures move
with what else runs). Every model reads from the embedded SQLite broker; the clock runs from publishing the
messages (workers already up) until the last handler has reported.

![messages per second by model](models.svg)

## CPU-bound: the test bench's work

${MESSAGES.toLocaleString("en")} messages, each \`chainedSha256(${ROUNDS.toLocaleString("en")})\` (test_bench/sha.ts) of a fixed per-message seed, in ${PASSES}
interleaved passes (each model runs its share of the messages in every pass; the figures add the passes up).
Efficiency = speed-up / cores used (1 for the event loop, the threads or processes for the others, at
most the machine's ${cores}). Cores busy = CPU time of the process(es) / wall time, measured (main thread,
threads, children and supervisor included): what the model actually got. Work per CPU-second = messages
per CPU-second relative to the event loop's: below 1 is the model's own cost (dispatch, copies, idle
threads at the end of a pass), independent of how many cores the machine had free. Projected = work per
CPU-second x cores used: the speed-up to expect when those cores are free (an estimate, not a measurement).

| model | messages/s | speed-up | cores used | efficiency | cores busy | work per CPU-second | projected |
|---|---|---|---|---|---|---|---|
${cpu.map(row).join("\n")}

## IO-bound: a handler that awaits ${IO_MS} ms, on the event loop

| concurrency | messages | messages/s | vs concurrency 1 |
|---|---|---|---|
${io.map((m) => `| ${m.name.replace("concurrency ", "")} | ${m.messages} | ${m.perSecond.toFixed(1)} | ${(m.perSecond / ioBase.perSecond).toFixed(1)}x |`).join("\n")}

## Dispatch cost of the thread runner

The runner alone (no broker) on a no-op handler, the pool kept busy (twice its capacity in flight), the
median of three rounds after a warm-up. The event loop runner does the same in ${base.wallUs.toFixed(1)} µs per message. "piscina alone" is piscina with the same
settings (sync atomics, the body copied and transferred) running an echo task, one message per task: the
cost of a round trip. The runner sends the messages that wait together in one task (ThreadPoolRunner's
\`coalesceMs\`), so it can go below it.

| runner | µs per message (wall) | over the event loop | main thread busy, µs per message |
|---|---|---|---|
${pools.map((p) => `| ${p.name} | ${p.wallUs.toFixed(1)} | +${(p.wallUs - base.wallUs).toFixed(1)} | ${p.mainUs.toFixed(1)} |`).join("\n")}

## Reading the figures

- Speed-up needs free cores: threads 4 on ${cores} cores can run no more than ${cores} handlers at once, the
  rest is switching. On a shared machine a model also gets fewer cores than it asks for, and a model with
  more threads gets a larger share of a busy machine (the scheduler shares by thread): "cores busy" shows
  what each got. Work per CPU-second does not depend on that: it is the part the model itself wastes.
- processes 2 x 1 = two supervised \`wqueue worker\` children on the same SQLite file (competing
  consumers), each running one message at a time on its event loop.
- The thread runner's cost per message is piscina's round trip (a message each way, waking the thread)
  shared by the messages of a task, plus the runner's own per message (copying the body, the outcome). With
  4 in flight on 2 threads a task holds at most 4 messages, so the round trip, which on a busy machine is
  mostly the wait for a core, still weighs. It matters only for handlers of a few hundred microseconds or
  less: a ${ROUNDS.toLocaleString("en")}-round sha256 takes milliseconds, and its messages go one per task.

## Targets

| target | measured | |
|---|---|---|
${targets.map(([name, value, target, unit]) => `| ${name} | ${value.toFixed(2)}${unit} | ${verdict(value, target)} |`).join("\n")}
`;
  writeFileSync(path.join(ROOT, "docs/benchmarks-models.md"), markdown);
  writeFileSync(path.join(ROOT, "docs/models.svg"), chart(cpu, io));
  console.log("wrote docs/benchmarks-models.md and docs/models.svg");
}

/** Two bar panels, hand-drawn: CPU-bound messages/s per model, IO-bound messages/s per concurrency. */
function chart(cpu: Measured[], io: Measured[]): string {
  const width = 760;
  const barHeight = 26;
  const gap = 10;
  const labelWidth = 170;
  const plotWidth = width - labelWidth - 110;
  const panel = (title: string, items: Measured[], top: number, colour: string, note: (m: Measured) => string) => {
    const max = Math.max(...items.map((m) => m.perSecond));
    const bars = items
      .map((m, i) => {
        const y = top + 28 + i * (barHeight + gap);
        const w = Math.max(2, (m.perSecond / max) * plotWidth);
        return [
          `<text x="${labelWidth - 10}" y="${y + 18}" text-anchor="end">${escapeXml(m.name)}</text>`,
          `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${colour}" rx="3"/>`,
          `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + 18}">${m.perSecond.toFixed(1)}/s ${escapeXml(note(m))}</text>`,
        ].join("");
      })
      .join("\n  ");
    return `<text x="10" y="${top + 16}" font-weight="bold">${escapeXml(title)}</text>\n  ${bars}`;
  };
  const cpuTop = 10;
  const ioTop = cpuTop + 40 + cpu.length * (barHeight + gap);
  const height = ioTop + 40 + io.length * (barHeight + gap);
  const base = cpu[0]?.perSecond ?? 1;
  const ioBase = io[0]?.perSecond ?? 1;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">
  <rect width="100%" height="100%" fill="white"/>
  ${panel(`CPU-bound: chainedSha256(${ROUNDS.toLocaleString("en")}) messages/s (${cores} cores)`, cpu, cpuTop, "#3b7dd8", (m) => `(${(m.perSecond / base).toFixed(2)}x)`)}
  ${panel(`IO-bound: await ${IO_MS} ms, event loop, messages/s`, io, ioTop, "#2f9e6e", (m) => `(${(m.perSecond / ioBase).toFixed(0)}x)`)}
</svg>
`;
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}
