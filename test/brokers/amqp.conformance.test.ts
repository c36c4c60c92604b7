import { afterAll, beforeAll } from "vitest";
import { openAmqpBroker } from "../../src/brokers/amqp/open-amqp-broker.js";
import { brokerConformanceSuite, skipAllBut } from "../../src/testing/conformance.js";
import { type PrivateRabbit, startPrivateRabbit } from "../setup/private-rabbitmq.js";
import { requireRabbit } from "./amqp-server.js";

// Every case runs against the real RabbitMQ, in a vhost of this file's own (deleted at the end,
// queues included). Every open() is a new connection, as separate workers would be.
const rabbit = requireRabbit("conformance");

brokerConformanceSuite({
  name: "amqp",
  open: () => openAmqpBroker(rabbit.url),
  child: { arg: () => rabbit.url },
  skip: { "broker-restart": "run below on a private RabbitMQ node: the shared one on 5672 must keep running for the other test files" },
});

// A RabbitMQ node of this file's own (other ports, node name and data), shut down and started again
// by the restart case: durable queues and persistent messages must survive it.
let node: PrivateRabbit | undefined;
beforeAll(async () => {
  node = await startPrivateRabbit();
}, 200_000);
afterAll(() => node?.stop(), 90_000);

brokerConformanceSuite({
  name: "amqp broker-restart (a private RabbitMQ node, shut down and started)",
  open: () => openAmqpBroker((node as PrivateRabbit).url),
  restartBroker: () => (node as PrivateRabbit).restart(),
  skip: skipAllBut(["broker-restart"], "run above on the shared RabbitMQ; this private node is for the restart case only"),
});
