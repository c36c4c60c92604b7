// Run by test-worker.test.ts with `node --test`: the test worker outside vitest, as a user of the
// built package would use it (wqueue/testing/worker imports no test framework).
import assert from "node:assert/strict";
import { test } from "node:test";
import { WQueue } from "../../../dist/index.js";
import { createTestWorker } from "../../../dist/testing/test-worker.js";

test("handles, retries and dead-letters under node:test", async () => {
  const app = new WQueue({ retry: { maxAttempts: 2 } });
  app.listenEvents("greet", (m) => {
    if (m.body.name === "nobody") throw new Error("who?");
  });
  const t = await createTestWorker(app);
  try {
    await t.publish("greet", { name: "ada" });
    await t.publish("greet", { name: "nobody" });
    await t.drain();
    assert.deepEqual(t.handled("greet").map((m) => m.body), [{ name: "ada" }]);
    const dead = await t.deadLetters("greet");
    assert.deepEqual(dead.map((d) => [d.body, d.attempts]), [[{ name: "nobody" }, 2]]);
  } finally {
    await t.close();
  }
});

test("the package exports it as wqueue/testing/worker", async () => {
  const pkg = await import("../../../package.json", { with: { type: "json" } });
  assert.equal(pkg.default.exports["./testing/worker"].default, "./dist/testing/test-worker.js");
});
