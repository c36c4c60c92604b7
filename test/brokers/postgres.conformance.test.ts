import { afterAll } from "vitest";
import { PostgresBroker } from "../../src/brokers/postgres/PostgresBroker.js";
import { brokerConformanceSuite } from "../../src/testing/conformance.js";
import { dropSchema, schemaUrl, testSchema } from "./postgres-helpers.js";

// Every open() is a new pool and LISTEN connection on one schema, as separate workers would be; the
// kill cases' child process opens the same schema. A 5 s lease brings a killed consumer's message back soon.
const schema = testSchema();
afterAll(() => dropSchema(schema));
const url = () => schemaUrl(schema, "lease=5000");

brokerConformanceSuite({
  name: "postgres",
  open: () => new PostgresBroker(url()),
  child: { arg: url },
  skip: {
    "broker-restart":
      "the shared PostgreSQL server must not be restarted: the case runs on a private server in " +
      "test/brokers/postgres-restart.conformance.test.ts",
  },
});
