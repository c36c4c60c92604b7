import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { RedisLeaseStore } from "../../src/brokers/kinesis/leases/RedisLeaseStore.js";
import { ConfigError } from "../../src/errors.js";
import { runCli, tempDir, writeApp } from "../cli/run-cli.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-private-server.js";
import { REDIS_URL, rawRedis, requireRedis } from "./redis-server.js";

requireRedis();

/**
 * A Redis that answers but refuses what the URL asks (a database it does not have, a wrong or
 * missing password) is a configuration error: connect() rejects with ConfigError, the CLI prints one
 * line and exits 2, and nothing is read from or written to another database meanwhile.
 */
const outOfRange = (mode: string) => Object.assign(new URL(REDIS_URL), { pathname: "/99", search: `?mode=${mode}` }).toString();

async function connectError(url: string): Promise<Error> {
  const broker = openRedisBroker(url);
  try {
    await broker.connect();
  } catch (error) {
    return error as Error;
  } finally {
    await broker.close();
  }
  throw new Error(`connect() to ${url} succeeded`);
}

describe("redis connect-time refusals", () => {
  let secured: PrivateRedis;
  beforeAll(async () => {
    secured = await startPrivateRedis({ password: "hunter2" });
  });
  afterAll(async () => {
    await secured?.stop();
  });

  it.each(["reliable", "list", "stream"])("rejects a database number Redis does not have, mode=%s", async (mode) => {
    const error = await connectError(outOfRange(mode));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(`Redis at ${outOfRange(mode)} refused database 99: ERR DB index is out of range`);
  });

  it("rejects a wrong password (WRONGPASS) and a missing one (NOAUTH), the password redacted", async () => {
    const wrong = await connectError(`redis://:nope-${randomUUID().slice(0, 4)}@127.0.0.1:${secured.port}/0`);
    expect(wrong).toBeInstanceOf(ConfigError);
    expect(wrong.message).toMatch(new RegExp(`^Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${secured.port}/0 refused the connection: WRONGPASS`));
    const missing = await connectError(`redis://127.0.0.1:${secured.port}/0?mode=stream`);
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing.message).toMatch(/refused the connection: NOAUTH Authentication required/);
    const right = openRedisBroker(`redis://:hunter2@127.0.0.1:${secured.port}/3`);
    await right.connect(); // the right password and an existing database still connect
    await right.close();
  });

  it("rejects the Kinesis checkpoint store's Redis the same way", async () => {
    const store = new RedisLeaseStore(outOfRange("reliable").replace("?mode=reliable", ""), "app");
    try {
      await expect(store.connect()).rejects.toThrow(ConfigError);
    } finally {
      await store.close();
    }
  });

  describe("through the CLI (needs `npm run build`)", () => {
    const raw = rawRedis();
    afterAll(() => raw.disconnect());
    const expectOneLine = (result: { code: number | null; stderr: string }, url: string) => {
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split("\n")).toEqual([`wqueue: Redis at ${url} refused database 99: ERR DB index is out of range`]);
    };

    it("`wqueue push` and `wqueue worker` exit 2 with one line, writing nothing to database 0", async () => {
      const queue = `redis-connect-errors.${randomUUID().slice(0, 8)}`;
      await raw.connect();
      await raw.rpush(queue, "left for database 0's own consumers");
      try {
        expectOneLine(await runCli(["push", queue, '{"n":1}', "--broker", outOfRange("reliable")]), outOfRange("reliable"));
        const app = writeApp(tempDir(), "app.ts", `export const app = new WQueue(); app.listenEvents(${JSON.stringify(queue)}, () => {});`);
                for (const mode of ["reliable", "list", "stream"]) {
          expectOneLine(await runCli(["worker", "-a", app, "--broker", outOfRange(mode)]), outOfRange(mode));
        }
        expect(await raw.lrange(queue, 0, -1)).toEqual(["left for database 0's own consumers"]);
        expect(await raw.keys(`${queue}:*`)).toEqual([]);
      } finally {
        await raw.del(queue);
      }
    }, 60_000);
  });
});
