import { randomUUID } from "node:crypto";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../../src/brokers/contract.js";
import { openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";
import { runCli, tempDir, writeApp } from "../cli/run-cli.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";

/** The `wqueue` CLI (built: `npm run build`) on Kafka: what the adapter's checks look like to an operator. */
beforeAll(() => ensureKafka(), 300_000);

const opened: Broker[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

describe("wqueue on kafka", () => {
  it("worker: an invalid topic name stops it before ready, with one line and exit code 2", async () => {
    const dir = tempDir();
    const app = writeApp(dir, "app.ts", `export const app = new WQueue();\napp.listenEvents("orders/new", async () => {});`);
    // kafkajs 2.2's negative timer delays would add Node 24's TimeoutNegativeWarning: wqueue drops
    // that one (kafkajs-warnings.ts), so the one line here is wqueue's own.
    const { code, stdout, stderr } = await runCli(["worker", "-a", app, "--broker", `${KAFKA_URL}?group=cli-${randomUUID().slice(0, 8)}`]);
    expect(code).toBe(2);
    expect(stdout).not.toContain("ready");
    const said = [...stdout.split("\n"), ...stderr.split("\n")].filter(Boolean);
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('"orders/new" is not a valid Kafka topic name');
  }, 60_000);

  it("dead-letters list shows a queue's dead letters and leaves them there", async () => {
    const id = randomUUID().slice(0, 8);
    const url = `${KAFKA_URL}?group=cli-${id}`;
    const queue = `cli.${id}`;
    const broker = openKafkaBroker(url);
    opened.push(broker);
    await broker.publish(queue, ['{"id":1}', '{"id":2}'].map((body) => ({ body: Buffer.from(body), headers: { "x-origin": "test" } })));
    const consumer = broker.consumer(queue);
    const got: Awaited<ReturnType<typeof consumer.receive>> = [];
    const signal = AbortSignal.timeout(20_000);
    while (got.length < 2 && !signal.aborted) got.push(...(await consumer.receive(2 - got.length, signal)));
    for (const delivery of got) {
      await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: `bad ${Buffer.from(delivery.body)}` } });
    }
    await consumer.close();

    for (let round = 0; round < 2; round += 1) {
      const listed = await runCli(["dead-letters", "list", queue, "--broker", url, "--json"]);
      expect(listed.code).toBe(0);
      const rows = listed.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
      expect(rows.map((r) => [r.queue, r.reason, r.error, r.body, r.headers["x-origin"]])).toEqual([
        [queue, "handler-failed", 'TypeError: bad {"id":1}', '{"id":1}', "test"],
        [queue, "handler-failed", 'TypeError: bad {"id":2}', '{"id":2}', "test"],
      ]);
    }
    const replayed = await runCli(["dead-letters", "replay", queue, "--broker", url]);
    expect(replayed.stderr).toContain(`replayed 2 dead letter(s) from ${queue}.dead`);
    expect((await runCli(["dead-letters", "list", queue, "--broker", url, "--json"])).stdout.trim()).toBe("");
  }, 90_000);
});
