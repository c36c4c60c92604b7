import { KeyedSequencer } from "../KeyedSequencer.js";
import type { OrderingKey } from "../ordering.js";
import type { Step } from "./step.js";

/**
 * Messages with the same key run one after another, in the order received; other keys and
 * keyless messages in parallel. Outermost, so that ack-before and settling keep that order too.
 * A message still waiting for its turn when the worker gives it up (shutdown deadline) was given
 * back meanwhile: it does not run.
 */
export function inKeyOrder(keyOf: OrderingKey): Step {
  const sequencer = new KeyedSequencer();
  return (next) => (delivery, signal) => {
    const key = keyOf(delivery);
    if (key === undefined) return next(delivery, signal);
    return sequencer.run(key, async () => (signal.aborted ? undefined : next(delivery, signal)));
  };
}
