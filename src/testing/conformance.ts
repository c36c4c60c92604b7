import { describe, it } from "vitest";
import { CONFORMANCE_CASES, type ConformanceCase, type ConformanceOptions, runConformanceCase, skipReason } from "./conformance-cases.js";

export type { ChildBroker } from "./child-consumer.js";
export { CONFORMANCE_CASES, type ConformanceCase, type ConformanceOptions, runConformanceCase } from "./conformance-cases.js";

/**
 * The broker conformance suite (in the manner of Watermill's universal Pub/Sub tests): every
 * adapter runs it against a real broker, from a short file that says how to open the broker, how
 * another process opens it (`child`, for the cases that SIGKILL a consumer) and how to restart its
 * server (`restartBroker`). Each case uses its own fresh queue name. A case is skipped for the
 * reason the file gives (`skip`), or for the feature the broker does not declare (`features`):
 * whatever a broker declares is tested.
 */
export function brokerConformanceSuite(options: ConformanceOptions): void {
  const patienceMs = options.patienceMs ?? 30_000;
  /** Cases that wait for a message to come back more than once get room for it. */
  const timeouts: Partial<Record<ConformanceCase, number>> = {
    "durable-delay": patienceMs * 2 + 20_000,
    "killed-consumer-returns": patienceMs * 2 + 20_000,
    "broker-restart": patienceMs * 3 + 60_000,
  };
  describe(`broker conformance: ${options.name}`, () => {
    for (const name of CONFORMANCE_CASES) {
      const reason = skipReason(options, name);
      if (reason !== undefined) {
        it.skip(`${name} (skipped: ${reason})`, () => {});
        continue;
      }
      it(
        name,
        async (context) => {
          const { skipped } = await runConformanceCase(options, name);
          if (skipped !== undefined) context.skip(skipped);
        },
        timeouts[name] ?? patienceMs + 15_000,
      );
    }
  });
}

/** A `skip` that runs only `only` (e.g. the restart case on a private server), all others skipped for `reason`. */
export function skipAllBut(only: ConformanceCase[], reason: string): Partial<Record<ConformanceCase, string>> {
  return Object.fromEntries(CONFORMANCE_CASES.filter((name) => !only.includes(name)).map((name) => [name, reason]));
}
