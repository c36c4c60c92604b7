export {
  brokerConformanceSuite,
  type ChildBroker,
  CONFORMANCE_CASES,
  type ConformanceCase,
  type ConformanceOptions,
  runConformanceCase,
  skipAllBut,
} from "./conformance.js";
