import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";

const inProcess = "the memory broker lives inside one process: no other process can open it, and nothing outlives it";

brokerConformanceSuite({
  name: "memory",
  open: () => new MemoryBroker("memory://conformance"),
  skip: {
    "killed-consumer-returns": inProcess,
    "broker-restart": "the memory broker lives inside the test process; there is no server to restart",
  },
});
