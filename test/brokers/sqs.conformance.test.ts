import { openSqsBroker } from "../../src/brokers/sqs/open-sqs-broker.js";
import { brokerConformanceSuite, skipAllBut } from "../../src/testing/conformance.js";
import { requireSqs } from "./sqs-server.js";

// Every case runs against the real ElasticMQ on 127.0.0.1:9324; each open() is a new SDK client,
// as separate workers would be. The queues the suite names are deleted when the file ends.
const shared = requireSqs({ prefix: "sqs-conformance" });

// ?visibility=5 (seconds): a killed consumer's message comes back 5 s after its receive. The kill
// cases' child process opens the same URL; the suite deletes its queues through `track` below.
const standard = () => shared.url("&visibility=5");

brokerConformanceSuite({
  name: "sqs standard queues (ElasticMQ)",
  open: () => shared.track(openSqsBroker(standard())),
  child: { arg: standard },
  skip: {
    // Checkable with the raw SDK: 5 SendMessageBatch calls of 10 come back as m0 m1 m3 m7 m8 m4 m9 m2
    // m5 m6 m10 m15 ...; the same 50 sent by single SendMessage calls come back in order.
    order:
      "SQS standard queues promise no order (features.ordered is false), and ElasticMQ's hand out the messages of one SendMessageBatch in no set order",
    "broker-restart": "restarting the shared ElasticMQ would empty it under the other test files: run below on a private one",
  },
});

// FIFO queues hand out no further message of a group while an earlier one of that group is in
// flight (SQS's documented FIFO rule, which ElasticMQ follows): cases that hold many unacked
// messages of one group (the suite publishes without keys: one group) wait for them in vain.
const groupLocked = "FIFO: no more messages of a group while earlier ones of it are unacked, and the case holds them";

const fifo = () => shared.url("&fifo=true&visibility=5");

brokerConformanceSuite({
  name: "sqs FIFO queues (?fifo=true, ElasticMQ)",
  open: () => shared.track(openSqsBroker(fifo()), true),
  child: { arg: fifo },
  skip: {
    credit: groupLocked,
    batch: groupLocked,
    order: `${groupLocked}; per-group order is tested in sqs.test.ts with acks as it goes`,
    "broker-restart": "run below on a private ElasticMQ, once, on standard queues",
  },
});

// A private ElasticMQ on a free port, stopped and started by the case (its queues are in memory:
// the restart empties it, so the adapter must create the queue again).
const restartable = requireSqs({ prefix: "sqs-restart", private: true });
const elsewhere = "run above on the shared ElasticMQ; this private one is for the restart case only";

brokerConformanceSuite({
  name: "sqs broker-restart (a private ElasticMQ, stopped and started)",
  open: () => openSqsBroker(restartable.url()),
  restartBroker: () => restartable.restart(),
  restartKeepsNothing: "ElasticMQ keeps its queues and messages in memory: a restart empties it",
  skip: skipAllBut(["broker-restart"], elsewhere),
});
