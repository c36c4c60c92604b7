import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Broker } from "../../src/brokers/contract.js";
import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { type ConformanceCase, type ConformanceOptions, runConformanceCase } from "../../src/testing/conformance.js";
import * as broken from "./broken-brokers.js";

// Each strengthened conformance case, run directly on a deliberately broken adapter, must reject;
// the same case on the honest adapter it wraps must pass (so the rejection is the break's doing).
// Short patience: the broken adapters make the cases wait for what never comes (longer than the
// 2 s SQLite visibility where a killed consumer's message must come back).
const patienceMs = 3000;
const memoryUrl = () => `memory://broken-${randomUUID().slice(0, 8)}`;
const dir = mkdtempSync(join(tmpdir(), "wqueue-conformance-breaks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sqliteUrl = (visibilityMs: number) => `sqlite://${join(dir, `${randomUUID().slice(0, 8)}.db`)}?visibility=${visibilityMs}`;
const brokenModule = new URL("./broken-brokers.ts", import.meta.url);

function memory(open: (url: string) => Broker): ConformanceOptions {
  const url = memoryUrl();
  return { name: "broken", open: () => open(url), patienceMs };
}

async function expectBroken(name: ConformanceCase, brokenOptions: ConformanceOptions, honestOptions: ConformanceOptions, message: RegExp) {
  await expect(runConformanceCase(honestOptions, name), "the honest adapter passes").resolves.toEqual({});
  await expect(runConformanceCase(brokenOptions, name), "the broken adapter fails").rejects.toThrow(message);
}

const honestMemory = () => memory((url) => new MemoryBroker(url));

describe("each strengthened conformance case fails on an adapter that breaks its property", () => {
  it("credit: receive(max) returning more than max", async () => {
    await expectBroken("credit", memory(broken.ignoresMax), honestMemory(), /receive\(2\) returned \d+ deliveries: more than its credit/);
  });

  it("credit: a consumer that prefetches past its maxInFlight", async () => {
    await expectBroken("credit", memory(broken.hoards), honestMemory(), /maxInFlight 2 holding 2 messages kept the others/);
  });

  it("competing-consumers: the first consumer gets every message", async () => {
    const url = memoryUrl();
    const open = broken.firstConsumerTakesAll(url);
    await expectBroken("competing-consumers", { name: "broken", open, patienceMs }, honestMemory(), /got nothing while the other held one/);
  });

  it("unsettled-return-on-close: close() loses what the consumer held", async () => {
    await expectBroken("unsettled-return-on-close", memory(broken.losesUnsettledOnClose), honestMemory(), /received 0 of 1/);
  });

  it("killed-consumer-returns: a SIGKILLed consumer's message is gone (acked on receive)", async () => {
    const url = sqliteUrl(2000);
    const honestUrl = sqliteUrl(2000);
    await expectBroken(
      "killed-consumer-returns",
      { name: "broken", open: () => broken.openAckOnReceive(url), child: { arg: () => url, module: brokenModule, export: "openAckOnReceive" }, patienceMs: 8000 },
      { name: "honest", open: () => new SqliteBroker(honestUrl), child: { arg: () => honestUrl }, patienceMs: 8000 },
      /never arrived/,
    );
  }, 60_000);

  it("killed-consumer-returns: a live consumer's messages are handed to another (no lease)", async () => {
    const url = sqliteUrl(2000);
    const honestUrl = sqliteUrl(2000);
    await expectBroken(
      "killed-consumer-returns",
      { name: "broken", open: () => broken.openLeaseless(url), child: { arg: () => url, module: brokenModule, export: "openLeaseless" }, patienceMs: 8000 },
      { name: "honest", open: () => new SqliteBroker(honestUrl), child: { arg: () => honestUrl }, patienceMs: 8000 },
      /messages a live consumer holds, handed to another/,
    );
  }, 60_000);

  it("durable-delay: declared, but the delay lived in the killed process", async () => {
    // A visibility shorter than the delay: a delay kept only in the dead process lets it out early.
    const url = sqliteUrl(500);
    const honestUrl = sqliteUrl(500);
    await expectBroken(
      "durable-delay",
      { name: "broken", open: () => broken.openInProcessDelay(url), child: { arg: () => url, module: brokenModule, export: "openInProcessDelay" }, patienceMs },
      { name: "honest", open: () => new SqliteBroker(honestUrl), child: { arg: () => honestUrl }, patienceMs },
      /the delay kept across the nacking process's death/,
    );
  }, 60_000);

  it("headers: declared, but deliveries carry none", async () => {
    await expectBroken("headers", memory(broken.dropsHeaders), honestMemory(), /expected/);
  });

  it("partitioned: declared, but deliveries carry no partition", async () => {
    // The honest memory broker skips the case (it declares no partitions): the broken one is tested.
    await expect(runConformanceCase(honestMemory(), "partitioned")).resolves.toEqual({
      skipped: "features.partitioned is false: deliveries carry no partition",
    });
    await expect(runConformanceCase(memory(broken.claimsPartitions), "partitioned")).rejects.toThrow(/partition of m0/);
  });

  it("order: declared, but batches come backwards", async () => {
    await expectBroken("order", memory(broken.reversesBatches), honestMemory(), /expected/);
  });

  it("broker-restart: declared durable, but the restart loses the queued message", async () => {
    const lying = broken.claimsDurability(memoryUrl());
    const honest = broken.claimsDurability(memoryUrl());
    await expectBroken(
      "broker-restart",
      { name: "broken", open: lying.open, restartBroker: lying.restart, patienceMs },
      // The same memory broker, not claiming durability: the case checks reconnection only, and passes.
      { name: "honest", open: () => new MemoryBroker(memoryUrl()), restartBroker: honest.restart, patienceMs },
      /before-\d never arrived/,
    );
  });
});
