import { randomUUID } from "node:crypto";
import { beforeAll } from "vitest";
import { openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";

// The global setup starts Kafka too; this keeps the file runnable on its own.
beforeAll(() => ensureKafka(), 300_000);

// A group of its own: members of other test files never rebalance these consumers.
const url = `${KAFKA_URL}?group=conformance-${randomUUID().slice(0, 8)}`;

brokerConformanceSuite({
  name: "kafka",
  open: () => openKafkaBroker(url),
  child: { arg: () => url },
  skip: {
    "broker-restart":
      "the test Kafka is one broker shared by every test file running in parallel; restarting it would " +
      "fail their cases. Reconnection is kafkajs's (retries, consumer restart in group-member.ts)",
  },
});
