import path from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { runCli, tempDir } from "./run-cli.js";

/** Publishes `bodies` to `queue` and dead-letters each, as a failing handler would. */
async function makeDeadLetters(broker: SqliteBroker, queue: string, bodies: string[]) {
  await broker.publish(queue, bodies.map((body) => ({ body: Buffer.from(body), headers: { "x-origin": "test" } })));
  const consumer = broker.consumer(queue);
  const got = await consumer.receive(bodies.length, AbortSignal.timeout(5000));
  for (const delivery of got) {
    await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: `bad ${Buffer.from(delivery.body)}` } });
  }
  await consumer.close();
}

describe("wqueue dead-letters", () => {
  it("lists without taking, replays to the original queue with the original headers, purges", async () => {
    const url = `sqlite://${path.join(tempDir(), "q.db")}`;
    const broker = new SqliteBroker(url);
    await makeDeadLetters(broker, "orders", ['{"id":1}', '{"id":2}']);

    const listed = await runCli(["dead-letters", "list", "orders", "--broker", url, "--json"]);
    expect(listed.code).toBe(0);
    const rows = listed.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    expect(rows.map((r) => [r.queue, r.reason, r.error, r.attempts, r.body])).toEqual([
      ["orders", "handler-failed", 'TypeError: bad {"id":1}', 1, '{"id":1}'],
      ["orders", "handler-failed", 'TypeError: bad {"id":2}', 1, '{"id":2}'],
    ]);
    // Listing again shows the same: nothing was taken.
    expect((await runCli(["dead-letters", "list", "orders.dead", "--broker", url, "--json"])).stdout.split("\n").filter(Boolean)).toHaveLength(2);

    const replayed = await runCli(["dead-letters", "replay", "orders", "--broker", url]);
    expect(replayed.code).toBe(0);
    expect(replayed.stderr).toContain("replayed 2 dead letter(s) from orders.dead");
    expect(await broker.browse("orders.dead", 10)).toEqual([]);
    const back = await broker.browse("orders", 10);
    expect(back.map((m) => Buffer.from(m.body).toString())).toEqual(['{"id":1}', '{"id":2}']);
    expect(back[0]?.headers).toEqual({ "x-origin": "test" });

    await makeDeadLetters(broker, "orders", ['{"id":3}']);
    const purged = await runCli(["dead-letters", "purge", "orders", "--broker", url]);
    expect(purged.stderr).toContain("purged 1 dead letter(s)");
    expect(await broker.browse("orders.dead", 10)).toEqual([]);
    await broker.close();
  });
});
