export { brokerConformanceSuite, CONFORMANCE_CASES, type ConformanceCase, type ConformanceOptions, skipAllBut } from "./conformance.js";
export { createTestWorker, type HandledMessage, type TestDeadLetter, type TestWorker, type TestWorkerOptions } from "./test-worker.js";
