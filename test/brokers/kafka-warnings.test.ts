import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silenceKafkajsNegativeTimeouts } from "../../src/brokers/kafka/kafkajs-warnings.js";
import { tempDir } from "../cli/run-cli.js";

/**
 * Node 24 warns (TimeoutNegativeWarning) for each negative timer delay, and kafkajs 2.2 sets one
 * per connection. The filter drops that warning when kafkajs raised it, and nothing else. Node 20
 * has no such warning: the calls are made the way Node 24's setTimeout makes them, from a module
 * at a kafkajs path and from one elsewhere.
 */
const seen: string[] = [];
const record = (warning: Error) => seen.push(`${warning.name}: ${warning.message}`);
beforeAll(() => {
  process.on("warning", record);
  silenceKafkajsNegativeTimeouts();
});
afterAll(() => {
  process.off("warning", record);
});

function moduleAt(dir: string): { warn: (message: string, type: string) => void } {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "timers.cjs");
  writeFileSync(file, "exports.warn = (message, type) => process.emitWarning(message, type);\n");
  return createRequire(import.meta.url)(file);
}

describe("kafkajs's negative-timeout warning", () => {
  it("is dropped when kafkajs raised it; the same warning from elsewhere and kafkajs's other warnings still show", async () => {
    const root = tempDir();
    const kafkajs = moduleAt(path.join(root, "node_modules", "kafkajs", "src", "network"));
    const app = moduleAt(path.join(root, "app"));
    kafkajs.warn("-1765000000000 is a negative number.\nTimeout duration was set to 1.", "TimeoutNegativeWarning");
    app.warn("-5 is a negative number.\nTimeout duration was set to 1.", "TimeoutNegativeWarning");
    kafkajs.warn("something else", "DeprecationWarning");
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    expect(seen).toEqual([
      "TimeoutNegativeWarning: -5 is a negative number.\nTimeout duration was set to 1.",
      "DeprecationWarning: something else",
    ]);
  });
});
