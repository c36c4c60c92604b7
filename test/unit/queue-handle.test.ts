import { afterEach, expect, test } from "vitest";
import { z } from "zod";
import { WQueue } from "../../src/index.js";
import { createTestWorker, type TestWorker } from "../../src/testing/index.js";

let t: TestWorker | undefined;
afterEach(async () => {
  await t?.close();
});

test("app.queue(): listen() registers with the handle's options, publish() sends to its queue on its broker", async () => {
  const app = new WQueue({ brokers: { billing: "redis://127.0.0.1:1" } });
  const payments = app.queue("payments", { schema: z.object({ euros: z.number() }).transform(({ euros }) => ({ cents: euros * 100 })), broker: "billing" });
  const seen: number[] = [];
  payments.listen((message) => {
    seen.push(message.body.cents);
  }, { concurrency: 1 });
  expect(app.subscriptions.map((s) => [s.queue, s.options.broker, s.options.concurrency])).toEqual([["payments", "billing", 1]]);

  t = await createTestWorker(app);
  await payments.publish({ euros: 2 });
  await t.drain();
  expect(seen).toEqual([200]); // on the "billing" broker: the subscription there received it
});
