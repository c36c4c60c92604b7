import { randomUUID } from "node:crypto";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import type { Message } from "../../src/app/types.js";
import { createBroker } from "../../src/brokers/registry.js";
import { DeadLetterNow } from "../../src/errors.js";
import { Worker } from "../../src/worker/Worker.js";
import { runCli, tempDir } from "../cli/run-cli.js";
import { memoryLogger, waitFor } from "../helpers.js";
import { requireRabbit } from "./amqp-server.js";
import { REDIS_URL, rawRedis, requireRedis } from "./redis-server.js";

/**
 * publish({ priority }) on the brokers that order by it, through a real Worker at concurrency 1:
 * a backlog published with mixed priorities is handled highest first, FIFO within a priority,
 * while retries and dead letters keep working; the others refuse it with a ConfigError.
 */
requireRedis();
const rabbit = requireRabbit("priorities");

/** Database 13 of the shared Redis, away from other files' keys; every key this file made is deleted after. */
const redisUrl = (params: string) => Object.assign(new URL(REDIS_URL), { pathname: "/13", search: params }).toString();
const redisQueues: string[] = [];
afterAll(async () => {
  const client = rawRedis();
  await client.connect();
  await client.select(13);
  for (const queue of redisQueues) {
    const keys = await client.keys(`${queue}*`);
    if (keys.length > 0) await client.del(...keys);
  }
  client.disconnect();
});

const workers: Worker[] = [];
const apps: WQueue[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(1000)));
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

const brokers: Record<string, () => string> = {
  sqlite: () => `sqlite://${path.join(tempDir(), "q.db")}`,
  "redis reliable": () => redisUrl(""),
  "rabbitmq ?maxPriority=9": () => `${rabbit.url}?maxPriority=9`,
};

interface Body {
  n: number;
  p: number;
  fail?: "once" | "dead";
}

describe.each(Object.entries(brokers))("priorities on %s", (_kind, brokerUrl) => {
  it("handles a backlog of mixed priorities highest first, FIFO within one; a retry and a dead letter still happen", async () => {
    const url = brokerUrl();
    const queue = `flow2-prio-${randomUUID().slice(0, 8)}`;
    redisQueues.push(queue);
    const app = new WQueue({ broker: url, retry: { baseDelayMs: 20, maxDelayMs: 50 } });
    apps.push(app);
    const handled: { n: number; p: number; attempt: number }[] = [];
    app.listenEvents(
      queue,
      (message: Message<Body>) => {
        const { n, p, fail } = message.body;
        handled.push({ n, p, attempt: message.attempt });
        if (fail === "dead") throw new DeadLetterNow("unwanted");
        if (fail === "once" && message.attempt === 1) throw new Error("first try fails");
      },
      { concurrency: 1 },
    );
    // 18 ordinary messages: priorities 0, 4, 9, 0, 4, 9, ... (n gives the publish order).
    const priorities = [0, 4, 9];
    const ordinary: Body[] = Array.from({ length: 18 }, (_, n) => ({ n, p: priorities[n % 3] as number }));
    for (const body of ordinary) await app.publish(queue, body, { priority: body.p });
    await app.publish(queue, { n: 100, p: 9, fail: "once" }, { priority: 9 });
    await app.publish(queue, { n: 101, p: 4, fail: "dead" }, { priority: 4 });
    await app.close();

    const worker = new Worker(app, { logger: memoryLogger().logger, concurrency: 1 });
    workers.push(worker);
    await worker.start();
    await waitFor(
      () => `21 handlings, saw ${JSON.stringify(handled)}`,
      () => handled.length >= 21,
      15_000,
    );

    // Highest priority first; within one, the publish order.
    const firstRuns = handled.filter((run) => run.attempt === 1);
    const expected = [...ordinary, { n: 100, p: 9 }, { n: 101, p: 4 }]
      .map(({ n, p }) => ({ n, p }))
      .sort((a, b) => b.p - a.p || a.n - b.n);
    expect(firstRuns.map(({ n, p }) => ({ n, p }))).toEqual(expected);
    // The failed one came back once, as attempt 2; the dead one went to the dead-letter queue.
    expect(handled.filter((run) => run.n === 100).map((run) => run.attempt)).toEqual([1, 2]);
    const broker = await createBroker(url);
    try {
      await broker.connect();
      await waitFor("the dead letter", async () => ((await broker.browse?.(`${queue}.dead`, 10)) ?? []).length === 1, 5000);
      const [letter] = (await broker.browse?.(`${queue}.dead`, 10)) ?? [];
      expect(JSON.parse(Buffer.from(letter?.body ?? []).toString())).toEqual({ n: 101, p: 4, fail: "dead" });
    } finally {
      await broker.close();
    }
  }, 30_000);
});

describe("priorities where the broker cannot order by them", () => {
  it.each([
    ["redis-list", () => redisUrl("?mode=list"), /not redis-list .*mode=list pops one plain list/],
    ["amqp without ?maxPriority", () => rabbit.url, /not amqp .*add \?maxPriority=9 to the amqp:\/\/ URL/],
  ])("%s: publish with a priority is refused, naming the broker and why; priority 0 passes", async (_kind, brokerUrl, why) => {
    const queue = `flow2-prio-no-${randomUUID().slice(0, 8)}`;
    redisQueues.push(queue);
    const app = new WQueue({ broker: brokerUrl() });
    apps.push(app);
    await expect(app.publish(queue, { n: 1 }, { priority: 3 })).rejects.toThrow(why);
    await app.publish(queue, { n: 2 }, { priority: 0 });
  });

  it("refuses a priority out of 0..9 or not an integer", async () => {
    const app = new WQueue({ broker: `sqlite://${path.join(tempDir(), "q.db")}` });
    apps.push(app);
    await expect(app.publish("q", {}, { priority: 10 })).rejects.toThrow(/priority must be an integer from 0 to 9 \(higher first\), not 10/);
    await expect(app.publish("q", {}, { priority: 1.5 })).rejects.toThrow(/not 1.5/);
    await expect(app.publish("q", {}, { priority: -1 })).rejects.toThrow(/not -1/);
  });

  it("rabbitmq: a queue that exists without x-max-priority gives a ConfigError saying how to move it, and takes no message", async () => {
    const queue = `flow2-prio-old-${randomUUID().slice(0, 8)}`;
    const channel = await (await rabbit.raw()).createChannel();
    await channel.assertQueue(queue, { durable: true });
    const app = new WQueue({ broker: `${rabbit.url}?maxPriority=9` });
    apps.push(app);
    await expect(app.publish(queue, { n: 1 }, { priority: 5 })).rejects.toThrow(
      new RegExp(`queue ${queue} exists without x-max-priority=9 .*rabbitmqctl delete_queue ${queue}`),
    );
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
    // A worker on it fails at start the same way, having taken nothing.
    await channel.sendToQueue(queue, Buffer.from('{"n":2}'));
    app.listenEvents(queue, () => {});
    const worker = new Worker(app, { logger: memoryLogger().logger });
    await expect(worker.start()).rejects.toThrow(new RegExp(`queue ${queue} exists without x-max-priority=9`));
    await waitFor("the message to be there, not taken", async () => (await channel.checkQueue(queue)).messageCount === 1);
    await channel.close();
  });
});

describe("priorities: where a taken message goes back", () => {
  const text = (value: string) => new TextEncoder().encode(value);
  const bodyOf = (delivery: { body: Uint8Array }) => Buffer.from(delivery.body).toString();

  it("redis reliable: a priority message given back (close, nack, delayed nack) returns ahead of priority 0", async () => {
    const queue = `flow2-prio-back-${randomUUID().slice(0, 8)}`;
    redisQueues.push(queue);
    const broker = await createBroker(redisUrl(""));
    try {
      await broker.connect();
      await broker.publish(queue, [{ body: text("a") }, { body: text("b") }, { body: text("urgent"), priority: 7 }]);
      const signal = AbortSignal.timeout(5000);
      // A closing consumer hands it back (RELEASE): the next one gets it again, counted.
      const first = broker.consumer(queue);
      const [taken] = await first.receive(1, signal);
      expect(taken && [bodyOf(taken), taken.attempt]).toEqual(["urgent", 1]);
      await first.close();
      const second = broker.consumer(queue);
      const [again] = await second.receive(1, signal);
      expect(again && [bodyOf(again), again.attempt]).toEqual(["urgent", 2]);
      // A nack puts it back into its priority, not behind "a" and "b".
      await again?.nack();
      const [third] = await second.receive(1, signal);
      expect(third && [bodyOf(third), third.attempt]).toEqual(["urgent", 3]);
      // A delayed nack goes through the delayed set and comes back to its priority too: due
      // (by Redis's clock) while "a" and "b" still wait, it is claimed before them.
      await third?.nack({ delayMs: 30 });
      const raw = rawRedis();
      await raw.connect();
      await raw.select(13);
      await waitFor("the delayed nack to come due", async () => {
        const [seconds, micros] = await raw.time();
        const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
        return (await raw.zcount(`${queue}:wqueue:delayed`, "-inf", now)) === 1;
      });
      raw.disconnect();
      const [fifth] = await second.receive(1, signal);
      expect(fifth && [bodyOf(fifth), fifth.attempt]).toEqual(["urgent", 4]);
      await fifth?.ack();
      await second.close();
    } finally {
      await broker.close();
    }
  });

  it("sqlite: a file written before priorities gets the column, keeps its rows, and orders new ones", async () => {
    const file = path.join(tempDir(), "old.db");
    const { openSqliteDatabase } = await import("../../src/brokers/shared/sqlite-database.js");
    const old = openSqliteDatabase(file, { busyTimeoutMs: 1000 });
    old.exec(`CREATE TABLE messages (
      id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body BLOB NOT NULL, headers TEXT, key TEXT,
      attempt INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL DEFAULT 0, receipt TEXT, created_at INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX messages_by_visibility ON messages (queue, visible_at, id);
      CREATE INDEX messages_in_order ON messages (queue, id, visible_at);
      INSERT INTO messages (queue, body) VALUES ('q', 'old');`);
    old.close();
    const broker = await createBroker(`sqlite://${file}`);
    try {
      await broker.publish("q", [{ body: text("new"), priority: 2 }]);
      const got = await broker.consumer("q").receive(2, AbortSignal.timeout(5000));
      expect(got.map(bodyOf)).toEqual(["new", "old"]);
    } finally {
      await broker.close();
    }
    // An older wqueue still reading the file (a rolling upgrade) takes through its own index.
    const reopened = openSqliteDatabase(file, { busyTimeoutMs: 1000 });
    try {
      const rows = reopened.prepare("SELECT id FROM messages INDEXED BY messages_in_order WHERE queue = 'q' ORDER BY id").all();
      expect(rows).toHaveLength(2);
    } finally {
      reopened.close();
    }
  });
});

describe("wqueue push --priority", () => {
  it("pushes at a priority where the broker orders by it, and refuses one elsewhere with one line, exit 2", async () => {
    const url = `sqlite://${path.join(tempDir(), "q.db")}`;
    const queue = `flow2-push-${randomUUID().slice(0, 8)}`;
    expect((await runCli(["push", queue, '{"n":1}', "--broker", url])).code).toBe(0);
    expect((await runCli(["push", queue, '{"n":2}', "--broker", url, "--priority", "6"])).code).toBe(0);
    const broker = await createBroker(url);
    try {
      const got = await broker.consumer(queue).receive(2, AbortSignal.timeout(5000));
      expect(got.map((delivery) => JSON.parse(Buffer.from(delivery.body).toString()).n)).toEqual([2, 1]);
    } finally {
      await broker.close();
    }
    const refused = await runCli(["push", queue, '{"n":3}', "--broker", redisUrl("?mode=list"), "--priority", "6"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/\{ priority \} needs a broker that orders by it .* not redis-list/);
  }, 30_000);
});
