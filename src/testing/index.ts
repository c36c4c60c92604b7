export { brokerConformanceSuite, type ConformanceCase, type ConformanceOptions } from "./conformance.js";
