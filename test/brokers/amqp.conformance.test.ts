import { openAmqpBroker } from "../../src/brokers/amqp/open-amqp-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { requireRabbit } from "./amqp-server.js";

// Every case runs against the real RabbitMQ, in a vhost of this file's own (deleted at the end,
// queues included). Every open() is a new connection, as separate workers would be.
const rabbit = requireRabbit("conformance");

brokerConformanceSuite({
  name: "amqp (broker-restart: `rabbitmqctl close_all_connections`, not a server restart)",
  open: () => openAmqpBroker(rabbit.url),
  child: { arg: () => rabbit.url },
  // The shared server must keep running for the other test files: dropping every connection is
  // what a restart does to a client (and what the adapter must recover from), minus the downtime.
  restartBroker: () => rabbit.closeConnections(),
});
