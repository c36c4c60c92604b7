export { brokerConformanceSuite, CONFORMANCE_CASES, type ConformanceCase, type ConformanceOptions, skipAllBut } from "./conformance.js";
