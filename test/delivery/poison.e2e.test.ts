import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Delivery } from "../../src/brokers/contract.js";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { edgeBrokers } from "./edge-brokers.js";

/**
 * A poison message: its handler kills the worker's process (SIGKILL, or process.exit(1)) every
 * time it runs. 30 messages, the 11th of them poison, a queue concurrency of 5 (so good messages
 * are received, prefetched and running beside it when the worker dies), `maxAttempts: 3`, and a
 * worker that the test starts again each time it dies, as a supervisor would.
 *
 * The promise under attack: the poison message is dead-lettered as `poison`; every other message
 * is handled and none of them is dead-lettered (they were only in bad company).
 */
const running: RunningCli[] = [];
afterAll(() => {
  for (const cli of running) cli.child.kill("SIGKILL");
});

const brokers = edgeBrokers("poison");
const cases = brokers.flatMap((broker) => [
  { ...broker, how: "SIGKILLs", kill: `process.kill(process.pid, "SIGKILL")` },
  { ...broker, how: "process.exit(1)s", kill: "process.exit(1)" },
]);

const COUNT = 30;
const POISON = 10;

function poisonApp(dir: string, queue: string, kill: string): { file: string; out: string } {
  const out = path.join(dir, "handled.txt");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
app.listenEvents(${JSON.stringify(queue)}, async (m: { body: { id: number; poison: boolean }; attempt: number }) => {
  await new Promise((resolve) => setTimeout(resolve, 20));
  if (m.body.poison) ${kill};
  appendFileSync(${JSON.stringify(out)}, m.body.id + "\\n");
}, { concurrency: 5 });`,
  );
  return { file, out };
}

const handled = (out: string) => new Set(existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean).map(Number) : []);

describe.concurrent("a message whose handler kills its worker", () => {
  it.each(cases)(
    "$name: a handler that $how is dead-lettered as poison; the 29 others are handled, none dead-lettered",
    async ({ setup, kill }) => {
      const target = await setup();
      try {
      const { file, out } = poisonApp(tempDir(), target.queue, kill);
      await target.publish(Array.from({ length: COUNT }, (_, id) => ({ id, poison: id === POISON })));
      const dead: Delivery[] = [];
      let deaths = 0;
      for (;;) {
        expect(deaths, "the worker kept dying: the poison message never reached a verdict").toBeLessThan(10);
        const cli = startCli(["worker", "-a", file, "--broker", target.url]);
        running.push(cli);
        let exited = false;
        void cli.exited.then(() => {
          exited = true;
        });
        await waitFor(
          () =>
            `the worker to die, or 29 handled and a dead letter (handled ${handled(out).size}, dead ${dead.length}, deaths ${deaths}); ` +
            `the worker said: ${[...cli.stdout, ...cli.stderr].slice(-6).join("\n")}`,
          async () => {
            if (exited) return true;
            if (handled(out).size < COUNT - 1) return false;
            dead.push(...(await target.takeDeadLetters()));
            return dead.length > 0;
          },
          150_000,
        );
        if (!exited) {
          cli.child.kill("SIGTERM");
          expect(await cli.exited).toBe(0);
          break;
        }
        deaths += 1;
      }
      dead.push(...(await target.takeDeadLetters()));
      const good = Array.from({ length: COUNT }, (_, id) => id).filter((id) => id !== POISON);
      expect([...handled(out)].sort((a, b) => a - b)).toEqual(good);
      // Dead letters are at least once too (a verdict given twice, e.g. on Kinesis when the shard
      // changed hands meanwhile, writes it twice): what must hold is that only the poison is there.
      expect([...new Set(dead.map((d) => JSON.parse(Buffer.from(d.body).toString()).id))]).toEqual([POISON]);
      expect(dead[0]?.headers["x-wqueue-dead-reason"]).toBe("poison");
      // The scenario was real: the handler did take the worker down before the verdict.
      expect(deaths).toBeGreaterThan(0);
      console.log(`poison on ${target.url}: worker died ${deaths} times; verdict: ${dead[0]?.headers["x-wqueue-dead-error-message"]}`);
      } finally {
        await target.close();
      }
    },
    300_000,
  );
});
