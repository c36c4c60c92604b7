import { afterAll, beforeAll } from "vitest";
import { openNatsBroker } from "../../src/brokers/nats/open-nats-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { type PrivateNats, startPrivateNats } from "./nats-private-server.js";

// Every case, broker-restart included, runs against a nats-server of this file's own (a free port,
// a fresh JetStream store, removed at the end): the restart case SIGKILLs it and starts it again
// on the same port and store, which the shared server on 4222 must never go through. Every open()
// is a new connection, as separate workers would be.
let server: PrivateNats | undefined;

beforeAll(async () => {
  server = await startPrivateNats();
});
afterAll(async () => {
  await server?.stop();
});

const running = (): PrivateNats => {
  if (server === undefined) throw new Error("the private nats-server did not start (see beforeAll)");
  return server;
};

// ?ackWait=5000: a killed consumer's messages come back 5 s after their delivery.
const url = () => `${running().url}?ackWait=5000`;

brokerConformanceSuite({
  name: "nats jetstream (private nats-server; broker-restart: kill -9 and start again)",
  open: () => openNatsBroker(url()),
  child: { arg: url },
  restartBroker: () => running().restart(),
});
