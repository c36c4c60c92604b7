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
      "the shared PostgreSQL server must not be restarted: the case runs on a private server in " +
      "test/brokers/postgres-restart.conformance.test.ts",
  },
});
