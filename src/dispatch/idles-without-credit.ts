import type { Consumer } from "../brokers/contract.js";

/** The pair of optional contract methods that lets a queue wait for messages holding no credit. */
export type CreditFreeIdling = Required<Pick<Consumer, "waitForMessages" | "take">>;

/**
 * The consumer's `waitForMessages` and `take`, bound, when it has both (brokers/contract.ts); else
 * undefined, and its queue keeps one receive, with one credit, pending while idle.
 */
export function creditFreeIdling(consumer: Consumer): CreditFreeIdling | undefined {
  const { waitForMessages, take } = consumer;
  if (waitForMessages === undefined || take === undefined) return undefined;
  return { waitForMessages: waitForMessages.bind(consumer), take: take.bind(consumer) };
}
