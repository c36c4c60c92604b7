import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresBroker } from "../../src/brokers/postgres/PostgresBroker.js";
import { brokerConformanceSuite, skipAllBut } from "../../src/testing/conformance.js";
import { waitFor } from "../helpers.js";
import { type PrivatePostgres, startPrivatePostgres } from "./postgres-private-server.js";

// The restart case on a private server (the shared one must never be restarted).
let server: PrivatePostgres;
beforeAll(async () => {
  server = await startPrivatePostgres();
}, 60_000);
afterAll(() => server?.stop());

brokerConformanceSuite({
  name: "postgres (private server, restarted)",
  open: () => new PostgresBroker(`${server.url}?poll=1000`),
  skip: skipAllBut(["broker-restart"], "runs in postgres.conformance.test.ts on the shared server"),
  restartBroker: () => server.restart(),
});

describe("postgres broker across a server restart", () => {
  it("a receive waiting on LISTEN when the server restarts gets the next message without a poll", async () => {
    const logged: string[] = [];
    // The default poll (30 s) is longer than this test may take: only the reconnected LISTEN can wake it.
    const broker = new PostgresBroker(server.url, (_level, message) => logged.push(message));
    await broker.connect();
    const consumer = broker.consumer("across-restart");
    const receiving = consumer.receive(10, AbortSignal.timeout(20_000));
    await new Promise((resolve) => setTimeout(resolve, 300)); // listening before the restart
    await server.restart();
    await waitFor("the LISTEN connection to be lost and back", () => logged.some((line) => line.includes("LISTEN connection was lost")), 10_000);
    const publisher = new PostgresBroker(server.url);
    await publisher.publish("across-restart", [{ body: new TextEncoder().encode("after") }]);
    const got = await receiving;
    expect(got.map((d) => new TextDecoder().decode(d.body))).toEqual(["after"]);
    await got[0]?.ack();
    await Promise.all([publisher.close(), broker.close()]);
  }, 40_000);
});
