import path from "node:path";
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import { formatStats } from "../../src/cli/stats-command.js";
import { loadPromClient } from "../../src/observability/prom-client.js";
import { createMetricsRegistry } from "../../src/observability/prometheus.js";
import { statsSnapshot } from "../../src/observability/stats-snapshot.js";
import { Worker } from "../../src/worker/Worker.js";
import { memoryLogger, waitFor } from "../helpers.js";
import { tempDir } from "../cli/run-cli.js";

/**
 * `concurrency: "auto"` through a real Worker on SQLite: the limit it runs at follows what the
 * handler's latency says. The handler stands for a resource that takes KNEE at once and slows
 * down steeply past that.
 */
const KNEE = 5;
const BASE_MS = 15;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const workers: Worker[] = [];
const apps: WQueue[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(1000)));
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function started(handler: () => Promise<void>, count: number): Promise<{ worker: Worker; app: WQueue }> {
  const queue = `flow2-auto-${randomUUID().slice(0, 8)}`;
  const app = new WQueue({ broker: `sqlite://${path.join(tempDir(), "q.db")}` });
  apps.push(app);
  app.listenEvents(queue, handler, { concurrency: { min: 2, max: 100 }, retry: false });
  for (let i = 0; i < count; i++) await app.publish(queue, { i });
  const worker = new Worker(app, { concurrency: 100, logger: memoryLogger().logger });
  workers.push(worker);
  await worker.start();
  return { worker, app };
}

const limitOf = (worker: Worker) => worker.adaptiveLimits().values().next().value as number;

describe('concurrency: "auto" on a real worker', () => {
  it(`stays near a handler's knee (${KNEE} in flight), far below its max of 100 and above its min`, async () => {
    let active = 0;
    let done = 0;
    let peak = 0;
    const { worker } = await started(async () => {
      active += 1;
      peak = Math.max(peak, active);
      await sleep(active <= KNEE ? BASE_MS : BASE_MS * (active / KNEE) ** 2);
      active -= 1;
      done += 1;
    }, 700);
    const limits: number[] = [];
    const sampler = setInterval(() => limits.push(limitOf(worker)), 20);
    try {
      await waitFor(() => `700 handled, ${done} so far`, () => done === 700, 60_000);
    } finally {
      clearInterval(sampler);
    }
    // After the first samples (it starts at 10 and must learn), every limit seen stays near the knee.
    const learnt = limits.slice(Math.floor(limits.length / 4));
    expect(Math.max(...learnt), `limits seen: ${learnt.join(" ")}`).toBeLessThanOrEqual(4 * KNEE);
    expect(Math.min(...learnt)).toBeGreaterThanOrEqual(2);
    expect(peak).toBeLessThan(30);
  }, 90_000);

  it("shrinks to its min while handlers fail, though their latency stays flat", async () => {
    let done = 0;
    const { worker } = await started(async () => {
      await sleep(BASE_MS);
      done += 1;
      throw new Error("the database refused");
    }, 400);
    const first = limitOf(worker);
    await waitFor(() => `the limit to reach its min of 2, at ${limitOf(worker)} after ${done} failures`, () => limitOf(worker) === 2, 30_000);
    expect(first).toBeGreaterThan(2);
  }, 60_000);

  it("grows past its start while latency stays flat and the queue has a backlog", async () => {
    let done = 0;
    const { worker } = await started(async () => {
      await sleep(BASE_MS);
      done += 1;
    }, 1500);
    await waitFor(() => `the limit to grow past 20, at ${limitOf(worker)} after ${done} messages`, () => limitOf(worker) > 20, 30_000);
    // /api/stats and `wqueue stats` show it.
    const snapshot = await statsSnapshot(worker);
    const autoLimit = snapshot.queues[0]?.autoLimit as number;
    expect(autoLimit).toBeGreaterThan(20);
    expect(formatStats(snapshot, undefined)).toMatch(new RegExp(`\\d+ \\(auto ${autoLimit}\\)`));
    // And /metrics, as wqueue_concurrency_limit.
    const prom = await loadPromClient();
    if (!prom) throw new Error("prom-client is a devDependency: npm ci installs it");
    const metrics = await createMetricsRegistry(
      { observer: worker.observer, inFlight: () => worker.inFlightBySubscription(), backlog: () => worker.backlog(), adaptiveLimits: () => worker.adaptiveLimits() },
      prom,
    ).metrics();
    expect(metrics).toMatch(/^wqueue_concurrency_limit\{queue="flow2-auto-[^"]+",broker="[^"]+"\} \d+$/m);
  }, 60_000);
});

describe('concurrency: "auto": what listenEvents refuses', () => {
  const app = new WQueue({ broker: "memory://auto-options" });
  it.each([
    [{ concurrency: "fast" }, /concurrency must be a whole number > 0, "auto" or \{ min, max \}/],
    [{ concurrency: { min: 0 } }, /concurrency.min must be a whole number > 0/],
    [{ concurrency: { min: 9, max: 3 } }, /concurrency.min \(9\) is above concurrency.max \(3\)/],
    [{ concurrency: { most: 3 } }, /concurrency \{ most \} is unknown/],
    [{ concurrency: "auto", batch: { maxSize: 10 } }, /concurrency "auto" is not for batch handlers/],
  ])("%j", (options, message) => {
    expect(() => app.listenEvents("q", async () => {}, options as never)).toThrow(message);
  });
});
