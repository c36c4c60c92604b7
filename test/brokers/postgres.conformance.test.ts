import { afterAll } from "vitest";
import { PostgresBroker } from "../../src/brokers/postgres/PostgresBroker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { dropSchema, schemaUrl, testSchema } from "./postgres-helpers.js";

// Every open() is a new pool and LISTEN connection on one schema, as separate workers would be.
const schema = testSchema();
afterAll(() => dropSchema(schema));

brokerConformanceSuite({
  name: "postgres",
  open: () => new PostgresBroker(schemaUrl(schema)),
  skip: {
    "broker-restart":
      "the PostgreSQL server is shared with other tests and must not be restarted; a killed worker's rows " +
      "coming back is covered by test/brokers/postgres.test.ts and test/delivery/kill-and-restart.e2e.test.ts",
  },
});
