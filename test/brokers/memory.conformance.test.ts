import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";

brokerConformanceSuite({
  name: "memory",
  open: () => new MemoryBroker("memory://conformance"),
  skip: { "broker-restart": "the memory broker lives inside the test process; there is no server to restart" },
});
