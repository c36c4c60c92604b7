// `npm start`: the test bench end to end on the embedded SQLite broker, no server needed.
// Pushes BENCH_COUNT (default 500) messages with a fixed seed, runs `wqueue worker` on them,
// waits until every one is handled, stops the worker with SIGTERM and prints a throughput summary.
// Progress of both phases: a bar in a terminal, plain lines otherwise.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { produce } from "./producer.js";
import { createProgress, type Progress } from "./progress.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const count = Number(process.env.BENCH_COUNT ?? 500);
const dir = mkdtempSync(path.join(tmpdir(), "wqueue-bench-"));
const broker = `sqlite://${path.join(dir, "bench.db")}`;

try {
  console.log(`test bench: pushing ${count} messages (n = 1,000..10,000, seed 42) to test_bench.sha on ${broker}`);
  const { totalRounds } = await produce({ count, min: 1000, max: 10_000, sleepMs: 0, broker, seed: 42, progress: process.stdout });

  const worker = spawn(process.execPath, [path.join(root, "bin/wqueue.js"), "worker", "-a", path.join(root, "test_bench/application.ts"), "--broker", broker], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, WQUEUE_LOG_FORMAT: "json" },
  });
  let readyAt = 0;
  let handled = 0;
  let consuming: Progress | undefined;
  const finished = new Promise<number>((resolve, reject) => {
    worker.once("exit", (code) => reject(new Error(`worker exited early with code ${code}`)));
    createInterface({ input: worker.stdout }).on("line", (line) => {
      if (line.startsWith("sha n=")) {
        handled += 1;
        consuming?.increment();
        if (handled === count) {
          consuming?.stop();
          resolve(performance.now());
        }
      } else if (line.includes('"msg":"ready:')) {
        readyAt = performance.now();
        console.log(`worker ${JSON.parse(line).msg}`);
        consuming = createProgress("consuming", count);
      }
    });
  });
  const doneAt = await finished;
  worker.removeAllListeners("exit");
  const exitCode = new Promise<number | null>((resolve) => worker.once("exit", resolve));
  worker.kill("SIGTERM");
  const code = await exitCode;
  const seconds = (doneAt - readyAt) / 1000;
  console.log(
    `test bench: ${handled} messages, ${totalRounds.toLocaleString("en")} sha256 rounds in ${seconds.toFixed(2)} s ` +
      `= ${(handled / seconds).toFixed(1)} messages/s, ${Math.round(totalRounds / seconds).toLocaleString("en")} sha256/s ` +
      `(event loop, embedded SQLite); worker exit code ${code} after SIGTERM`,
  );
  if (code !== 0) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
