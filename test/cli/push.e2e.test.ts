import { randomUUID } from "node:crypto";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import amqp from "amqplib";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { ROOT, runCli, tempDir } from "./run-cli.js";

const redis = new Redis(REDIS_URL);
afterAll(() => redis.disconnect());

/** Runs `wqueue ARGS` with `input` (bytes) on stdin; unlike runCli, the bytes are not decoded as text. */
function runWithBytes(args: string[], input: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, "bin/wqueue.js"), ...args], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
  child.stdin.end(input);
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

describe("wqueue push", () => {
  it("a message the broker refuses (10 MB to NATS, max_payload 1 MB) is one line and exit 1, no stack", async () => {
    const queue = `clipush_${randomUUID().slice(0, 8)}`;
    const result = await runWithBytes(["push", queue, "--raw", "--broker", "nats://127.0.0.1:4222"], Buffer.alloc(10 * 1024 * 1024, "x"));
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^wqueue: nats://127\\.0\\.0\\.1:4222 refused the message of stdin line 1 to ${queue}: .*max_payload`));
    expect(result.stdout).toBe("");
  });

  it("--raw passes stdin's bytes unchanged, invalid UTF-8 included, one message per line", async () => {
    const queue = `clipush.raw.${randomUUID().slice(0, 8)}`;
    const first = Buffer.from([0xff, 0xfe, 0x41, 0x80, 0xc3, 0x28]);
    const second = Buffer.from([0xed, 0xa0, 0x80, 0x0d]); // a lone surrogate, and a CR kept as a byte
    const result = await runWithBytes(["push", queue, "--raw", "--broker", REDIS_URL], Buffer.concat([first, Buffer.from("\n"), second, Buffer.from("\n")]));
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    // Read back with a client that is not wqueue: the list holds exactly those bytes.
    const stored = await redis.lrangeBuffer(queue, 0, -1);
    await redis.del(queue);
    expect(stored.map((b) => b.toString("hex")).sort()).toEqual([first.toString("hex"), second.toString("hex")].sort());
  });

  it("prints one confirmation line: count, queue and the broker, password redacted", async () => {
    const dir = tempDir();
    const broker = `sqlite://${path.join(dir, "q.db")}`;
    const one = await runCli(["push", "p", '{"a":1}', "--broker", broker]);
    expect(one.code).toBe(0);
    const sqlite = new SqliteBroker(broker);
    const shown = sqlite.url;
    try {
      expect(one.stdout).toBe(`pushed 1 message to p on ${shown}`);
      const many = await runCli(["push", "p", "--broker", broker], { input: '{"b":2}\n\n3\n"c"\n' });
      expect(many.code).toBe(0);
      expect(many.stdout).toBe(`pushed 3 messages to p on ${shown}`);
      expect(await sqlite.backlog("p")).toBe(4);
    } finally {
      await sqlite.close();
    }

    const queue = `clipush.amqp.${randomUUID().slice(0, 8)}`;
    const amqpResult = await runCli(["push", queue, '{"a":1}', "--broker", "amqp://guest:guest@127.0.0.1:5672"]);
    const connection = await amqp.connect("amqp://guest:guest@127.0.0.1:5672");
    const channel = await connection.createChannel();
    await channel.deleteQueue(queue);
    await connection.close();
    expect(amqpResult.code).toBe(0);
    expect(amqpResult.stdout).toBe(`pushed 1 message to ${queue} on amqp://guest:***@127.0.0.1:5672`);
  });

  it("empty stdin is an error, not a silent success: one line, exit 2", async () => {
    const broker = `sqlite://${path.join(tempDir(), "q.db")}`;
    for (const input of ["", "\n  \n"]) {
      const result = await runCli(["push", "p", "--broker", broker], { input });
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split("\n")).toEqual(["wqueue: nothing to push: stdin had no message (give MESSAGE, or one message per line on stdin)"]);
    }
  });

  it("a queue pattern is refused, one line and exit 2, nothing pushed", async () => {
    const file = path.join(tempDir(), "q.db");
    const result = await runCli(["push", "tenant.*", '{"a":1}', "--broker", `sqlite://${file}`]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toEqual([
      "wqueue: wqueue push tenant.*: that is a queue pattern (listenEvents takes those); push to one concrete queue",
    ]);
    expect(existsSync(file), "the broker was opened").toBe(false);
  });
});
