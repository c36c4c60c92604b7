import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { MqttBroker } from "../../src/brokers/mqtt/MqttBroker.js";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

/**
 * `wqueue worker` (built: `npm run build`) on the shared Mosquitto (127.0.0.1:1883), as an operator
 * runs it: messages from Debian's mosquitto_pub, two workers of one group, a worker killed with
 * SIGKILL while it holds unacked messages. Topics, groups and client ids are unique per test;
 * sessions expire a minute after it.
 */
const running: RunningCli[] = [];
const opened: MqttBroker[] = [];
afterEach(async () => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});
afterAll(() => {
  for (const cli of running) cli.child.kill("SIGKILL");
});

const id = () => randomUUID().slice(0, 8);
const url = (group: string, clientId: string) => `mqtt://127.0.0.1:1883?group=${group}&clientId=${clientId}&sessionExpiry=60`;
const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

/** An app whose handler appends `<tag> <n>` to `out`; while `slowFlag` exists it never finishes. */
function recordingApp(dir: string, topic: string, out: string, slowFlag = path.join(dir, "no-such-flag")): string {
  return writeApp(
    dir,
    "app.ts",
    `import { appendFileSync, existsSync } from "node:fs";
export const app = new WQueue();
app.listenEvents(${JSON.stringify(topic)}, async (m: { body: { n: number } }) => {
  appendFileSync(${JSON.stringify(`${out}.started`)}, m.body.n + "\\n");
  if (existsSync(${JSON.stringify(slowFlag)})) await new Promise((resolve) => setTimeout(resolve, 600_000));
  appendFileSync(${JSON.stringify(out)}, (process.env.TAG ?? "") + " " + m.body.n + "\\n");
}, { concurrency: 5 });`,
  );
}

async function startWorker(app: string, brokerUrl: string, tag = ""): Promise<RunningCli> {
  const cli = startCli(["worker", "-a", app, "--broker", brokerUrl], { env: { TAG: tag } });
  running.push(cli);
  await cli.waitForLine("the worker to be ready", (line) => line.includes("ready"), 60_000);
  return cli;
}

async function publisher(): Promise<MqttBroker> {
  const broker = new MqttBroker("mqtt://127.0.0.1:1883");
  opened.push(broker);
  await broker.connect();
  return broker;
}

const json = (n: number) => ({ body: Buffer.from(JSON.stringify({ n })) });
const numbers = (file: string) => lines(file).map((line) => Number(line.split(" ").pop()));

describe("wqueue worker on MQTT (Mosquitto)", () => {
  it("handles what mosquitto_pub -q 1 publishes to topics matching its filter (`+` wildcard)", async () => {
    const prefix = `wq-${id()}`;
    const dir = tempDir();
    const out = path.join(dir, "handled.txt");
    await startWorker(recordingApp(dir, `${prefix}/+/in`, out), url(`g-${id()}`, `w-${id()}`));
    for (const [device, n] of [["a", 1], ["b", 2], ["c", 3]] as const) {
      execFileSync("mosquitto_pub", ["-h", "127.0.0.1", "-q", "1", "-t", `${prefix}/${device}/in`, "-m", JSON.stringify({ n })]);
    }
    await waitFor(() => `3 messages handled (got ${lines(out).length})`, () => lines(out).length >= 3, 30_000);
    expect(numbers(out).sort()).toEqual([1, 2, 3]);
  }, 90_000);

  it("two workers of one group split a topic: each handles some, none is handled twice", async () => {
    const topic = `wq-${id()}/orders`;
    const group = `g-${id()}`;
    const dir = tempDir();
    const out = path.join(dir, "handled.txt");
    const app = recordingApp(dir, topic, out);
    await Promise.all([startWorker(app, url(group, `w1-${id()}`), "w1"), startWorker(app, url(group, `w2-${id()}`), "w2")]);
    const broker = await publisher();
    await broker.publish(topic, Array.from({ length: 60 }, (_, n) => json(n)));
    await waitFor(() => `60 messages handled (got ${lines(out).length})`, () => lines(out).length >= 60, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 500)); // a duplicate would show up now
    const handled = lines(out);
    expect(handled).toHaveLength(60);
    expect(numbers(out).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, n) => n));
    expect(handled.filter((line) => line.startsWith("w1 ")).length).toBeGreaterThan(0);
    expect(handled.filter((line) => line.startsWith("w2 ")).length).toBeGreaterThan(0);
  }, 120_000);

  it("a worker killed with SIGKILL loses nothing that reached its session: restarted with its client id, all arrive", async () => {
    const topic = `wq-${id()}/jobs`;
    const brokerUrl = url(`g-${id()}`, `k-${id()}`);
    const dir = tempDir();
    const out = path.join(dir, "handled.txt");
    const slowFlag = path.join(dir, "slow");
    writeFileSync(slowFlag, "");
    const app = recordingApp(dir, topic, out, slowFlag);
    const first = await startWorker(app, brokerUrl);
    const broker = await publisher();
    await broker.publish(topic, Array.from({ length: 10 }, (_, n) => json(n)));
    // Five handlers hold five messages unacked; the rest wait in the session (Receive Maximum 5).
    await waitFor(() => `5 handlers started (got ${lines(`${out}.started`).length})`, () => lines(`${out}.started`).length >= 5, 30_000);
    await broker.publish(topic, Array.from({ length: 10 }, (_, n) => json(10 + n)));
    first.child.kill("SIGKILL");
    await first.exited;
    await broker.publish(topic, Array.from({ length: 5 }, (_, n) => json(20 + n))); // while it is down
    expect(lines(out)).toEqual([]);
    rmSync(slowFlag);
    await startWorker(app, brokerUrl);
    await waitFor(() => `25 messages handled (got ${new Set(numbers(out)).size})`, () => new Set(numbers(out)).size >= 25, 60_000);
    expect([...new Set(numbers(out))].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, n) => n));
  }, 120_000);

  it("a message that SIGKILLs its worker is dead-lettered as poison after maxAttempts; the others are handled", async () => {
    const topic = `wq-${id()}/poison`;
    const brokerUrl = url(`g-${id()}`, `p-${id()}`);
    const dir = tempDir();
    const out = path.join(dir, "handled.txt");
    const app = writeApp(
      dir,
      "app.ts",
      `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
app.listenEvents(${JSON.stringify(topic)}, async (m: { body: { n: number; poison?: boolean } }) => {
  if (m.body.poison) process.kill(process.pid, "SIGKILL");
  appendFileSync(${JSON.stringify(out)}, " " + m.body.n + "\\n");
}, { concurrency: 5 });`,
    );
    // The dead-letter reader resumes the session each worker keeps for `<topic>.dead` (same URL).
    const reader = new MqttBroker(brokerUrl);
    opened.push(reader);
    const deadLetters = reader.consumer(`${topic}.dead`);
    let worker = await startWorker(app, brokerUrl);
    const broker = await publisher();
    await broker.publish(topic, Array.from({ length: 20 }, (_, n) => ({ body: Buffer.from(JSON.stringify({ n, poison: n === 7 })) })));
    let deaths = 0;
    const dead: Awaited<ReturnType<typeof deadLetters.receive>> = [];
    const deadline = AbortSignal.timeout(90_000);
    while (dead.length === 0 && !deadline.aborted) {
      dead.push(...(await deadLetters.receive(10, AbortSignal.timeout(500))));
      if (worker.child.exitCode !== null || worker.child.signalCode !== null) {
        deaths += 1;
        expect(deaths, "the worker kept dying: the poison message never reached a verdict").toBeLessThan(8);
        worker = await startWorker(app, brokerUrl);
      }
    }
    await waitFor(() => `19 handled (got ${new Set(numbers(out)).size})`, () => new Set(numbers(out)).size >= 19, 30_000);
    expect(dead.map((d) => JSON.parse(Buffer.from(d.body).toString()).n)).toEqual([7]);
    expect(dead[0]?.headers["x-wqueue-dead-reason"]).toBe("poison");
    expect(deaths).toBeGreaterThan(0);
    expect([...new Set(numbers(out))].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, n) => n).filter((n) => n !== 7));
    await dead[0]?.ack();
  }, 150_000);
});

describe("MQTT: bad input gets one line and loses nothing", () => {
  it("refuses a bad group or session expiry, a publish with a delay or to a filter; an unreachable broker is named without its password", async () => {
    expect(() => new MqttBroker("mqtt://127.0.0.1:1883?group=a/b")).toThrow(/group=a\/b must not contain/);
    expect(() => new MqttBroker("mqtt://127.0.0.1:1883?sessionExpiry=0")).toThrow(/sessionExpiry=0 must be/);
    const broker = await publisher();
    const topic = `wq-${id()}/refused`;
    await expect(broker.publish(topic, [{ body: Buffer.from("{}"), delayMs: 1000 }])).rejects.toThrow(/MQTT has no delayed delivery/);
    await expect(broker.publish(`${topic}/+`, [{ body: Buffer.from("{}") }])).rejects.toThrow(/"\+" and "#" are for subscribing/);
    const unreachable = new MqttBroker("mqtt://user:secret@127.0.0.1:1?group=x");
    opened.push(unreachable);
    const error = await unreachable.connect().then(() => undefined, (e: Error) => e);
    expect(error?.name).toBe("BrokerUnreachableError");
    expect(error?.message).toContain("cannot connect to MQTT at mqtt://user:***@127.0.0.1:1");
    expect(error?.message).not.toContain("secret");
  }, 30_000);
});
