import type { Delivery } from "../../brokers/contract.js";
import type { RunResult } from "../../pipeline/outcome.js";

/**
 * What a step of a subscription's dispatch chain answers: the run's result, or undefined when
 * nothing is left to settle (acked before the handler ran, or given back at the shutdown deadline).
 */
export type StepResult = RunResult | undefined;

/** The rest of the chain, from a step's point of view; the runner at its end. */
export type Next = (delivery: Delivery, signal: AbortSignal) => StepResult | Promise<StepResult>;

/**
 * One policy: given the rest of the chain, the chain with the policy around it (Watermill's router
 * middleware `func(HandlerFunc) HandlerFunc`). Called once per subscription, so a message costs
 * one call per step. A step that needs nothing async answers synchronously when `next` does: the
 * hot path of a sync handler builds no promise. `signal` aborts when the worker gives the message
 * up (shutdown deadline).
 */
export type Step = (next: Next) => Next;

/** Nests the steps once, the first outermost, around `last`. */
export function compose(steps: readonly Step[], last: Next): Next {
  return steps.reduceRight<Next>((next, step) => step(next), last);
}
