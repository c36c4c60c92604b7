/**
 * LeaseKeeper against a real consumer with a lease (SQLite's visibility, on a real file): what the
 * keeper renews stays owned past its lease, what it stops renewing comes back. The end-to-end
 * check on every broker is test/delivery/long-handler.e2e.test.ts.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { DeadLettersElsewhere } from "../../src/dead-letters/dead-letters-elsewhere.js";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { LeaseKeeper } from "../../src/dispatch/LeaseKeeper.js";
import { tempDir } from "../cli/run-cli.js";
import { memoryLogger, waitFor } from "../helpers.js";

const LEASE_MS = 400;
const brokers: SqliteBroker[] = [];
const keepers: LeaseKeeper[] = [];
afterEach(async () => {
  await Promise.all(keepers.splice(0).map((keeper) => keeper.stop()));
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

async function broker(file: string): Promise<SqliteBroker> {
  const opened = new SqliteBroker(`sqlite://${file}?visibility=${LEASE_MS}&poll=10`);
  brokers.push(opened);
  await opened.connect();
  return opened;
}

/** What `consumer` gets within `ms` (a bounded look, not a wait for a condition). */
async function receiveWithin(consumer: ReturnType<SqliteBroker["consumer"]>, ms: number): Promise<Delivery[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  try {
    return await consumer.receive(10, controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

describe("LeaseKeeper", () => {
  it.each([
    { through: "the adapter's consumer", wrap: (consumer: Consumer) => consumer },
    // deadLetterBroker wraps the consumer and its deliveries: renewing must reach the adapter's own.
    { through: "DeadLettersElsewhere (deadLetterBroker)", wrap: (consumer: Consumer, target: Broker) => new DeadLettersElsewhere(consumer, target, "elsewhere.dead") },
  ])("keeps held deliveries owned for 4 leases, then lets them go once it stops, through $through", async ({ wrap }) => {
    const file = join(tempDir(), "q.db");
    const mine = await broker(file);
    const theirs = await broker(file);
    await mine.publish("jobs", [{ body: Buffer.from("a") }, { body: Buffer.from("b") }]);
    const consumer = wrap(mine.consumer("jobs"), theirs);
    const held = new Set(await consumer.receive(10, new AbortController().signal));
    expect(held.size).toBe(2);
    const { logger } = memoryLogger();
    const keeper = new LeaseKeeper({ consumer, held: () => held, logger, queue: "jobs" });
    keepers.push(keeper);
    expect(keeper.tickMs).toBe(Math.floor(LEASE_MS / 3));
    keeper.start();
    keeper.arm(); // what the subscription loop does when it takes a delivery
    // Four leases long, the other consumer keeps looking and gets nothing.
    expect(await receiveWithin(theirs.consumer("jobs"), 4 * LEASE_MS)).toEqual([]);
    // One delivery settled, the other dropped from what the loop holds: only that one comes back.
    const [first, second] = [...held] as [Delivery, Delivery];
    await first.ack();
    held.clear();
    const other = theirs.consumer("jobs");
    let back: Delivery[] = [];
    await waitFor("the released delivery to come back to the other consumer", async () => {
      back = await receiveWithin(other, LEASE_MS);
      return back.length > 0;
    }, 10 * LEASE_MS);
    expect(back.map((d) => Buffer.from(d.body).toString())).toEqual([Buffer.from(second.body).toString()]);
    expect(back[0]?.attempt).toBe(2);
  });

  it("runs its timer only while something is held: armed by a delivery, stopped by a tick that finds none", async () => {
    const file = join(tempDir(), "q.db");
    const consumer = (await broker(file)).consumer("jobs");
    const held = new Set<Delivery>();
    const keeper = new LeaseKeeper({ consumer, held: () => held, logger: memoryLogger().logger, queue: "jobs" });
    keepers.push(keeper);
    keeper.arm();
    expect(keeper.renewing).toBe(false); // not started: arming does nothing
    keeper.start();
    expect(keeper.renewing).toBe(false); // started, nothing held: an idle queue costs no timer
    keeper.arm();
    expect(keeper.renewing).toBe(true);
    await waitFor("a tick that finds nothing held to stop the timer", () => !keeper.renewing, 10 * LEASE_MS);
    await keeper.stop();
    keeper.arm();
    expect(keeper.renewing).toBe(false); // stopped: arming does nothing
  });

  it("has no timer for a consumer without a lease", async () => {
    const file = join(tempDir(), "q.db");
    const consumer = (await broker(file)).consumer("jobs");
    const withoutLease = { receive: consumer.receive.bind(consumer), close: consumer.close.bind(consumer) };
    const keeper = new LeaseKeeper({ consumer: withoutLease, held: () => [], logger: memoryLogger().logger, queue: "jobs" });
    expect(keeper.tickMs).toBeUndefined();
  });
});
