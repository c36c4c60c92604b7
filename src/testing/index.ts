export {
  brokerConformanceSuite,
  type ChildBroker,
  CONFORMANCE_CASES,
  type ConformanceCase,
  type ConformanceOptions,
  runConformanceCase,
  skipAllBut,
} from "./conformance.js";
export { createTestWorker, type HandledMessage, type TestDeadLetter, type TestWorker, type TestWorkerOptions } from "./test-worker.js";
