import type { AckPolicy, BatchOptions, RetryOptions } from "../app/types.js";
import type { Consumer } from "../brokers/contract.js";
import type { Logger } from "../log/logger.js";
import type { MessageTracer } from "../observability/tracing.js";
import type { Runner } from "../runners/Runner.js";
import type { SuspectSandbox } from "../runners/SuspectSandbox.js";
import { ConfigError } from "../errors.js";
import { collectBatches } from "./batch-collector.js";
import type { CreditPool } from "./CreditPool.js";
import type { OrderingKey } from "./ordering.js";
import { ackBefore } from "./steps/ack-before.js";
import { inKeyOrder } from "./steps/in-key-order.js";
import { type FailureObserver, logFailures } from "./steps/log-failures.js";
import { type OutcomeRecorder, recordStats } from "./steps/record-stats.js";
import { retryPolicy } from "./steps/retry-policy.js";
import { softTimeout } from "./steps/soft-timeout.js";
import { compose, type Next, type Step } from "./steps/step.js";
import { suspectsAlone } from "./steps/suspects-alone.js";
import { traced } from "./steps/traced.js";
import type { AdaptiveLimit } from "./AdaptiveLimit.js";
import { SubscriptionLoop } from "./SubscriptionLoop.js";
import type { RateGate } from "./RateGate.js";
import { pauseOnRateLimited } from "./steps/pause-on-rate-limited.js";
import { type RatePerKeyOptions, ratePerKey } from "./steps/rate-per-key.js";

/** Everything one subscription's dispatch is built from: its flow control and its policies. */
export interface SubscriptionSpec {
  /** Identifies the subscription to the runner and the sandbox (`${broker}/${queue}`). */
  id: string;
  queue: string;
  consumer: Consumer;
  runner: Runner;
  pool: CreditPool;
  /** This queue's own limit of messages fetched or running at once (with `limiter`: its ceiling). */
  concurrency: number;
  /** `concurrency: "auto"`: the adaptive limit in force (AdaptiveLimit.ts). */
  limiter?: AdaptiveLimit;
  logger: Logger;
  /** undefined: no retries, the first failure dead-letters. */
  retry: Required<RetryOptions> | undefined;
  /** "before" acks on receipt (at-most-once); otherwise the chain's outcome settles the message. */
  ackPolicy?: AckPolicy;
  /** Soft timeout: message.signal aborts, the message is retried, the slot freed. */
  timeoutMs?: number;
  /** Past this many deliveries a message is a suspect (see steps/suspects-alone.ts). */
  maxDeliveries: number;
  sandbox?: SuspectSandbox;
  /** Messages with the same key run one after another. */
  orderingKey?: OrderingKey;
  /** Counters of this subscription (metrics, dashboard); also counts receipts. */
  stats?: OutcomeRecorder & { received: number };
  /** Told about every failure, for the dashboard's recent failures. */
  observer?: FailureObserver;
  /** OpenTelemetry, when installed: a consumer span per message. */
  tracer?: MessageTracer;
  /** A receive failed with an error that cannot heal by retrying (see SubscriptionLoop). */
  onFatal?: (error: Error) => void;
  /** A batch subscription (defaults resolved): the chain ends in collect-batches, not the runner. */
  batch?: Required<BatchOptions>;
  /** Shared rate limit and RateLimited pause (RateGate.ts). */
  gate?: RateGate;
  /** `rateLimit: { by }`: a limit per key, checked first (steps/rate-per-key.ts). */
  ratePerKey?: RatePerKeyOptions;
}

/**
 * A subscription's policies, outermost first; a policy the subscription does not use is left
 * out, not skipped per message:
 *
 *   rate per key → in key order → ack before → tracing → stats → failure log → RateLimited pause
 *     → retry/dead-letter decision → soft timeout → suspects to the sandbox → runner (a batch
 *     subscription: → collect a batch → the runner, once per batch; batch-collector.ts)
 *
 * The runner then runs, where the handler lives (event loop, thread, sandbox): decode → validate
 * → app.use middleware → the queue's middleware → handler (pipeline/run-handler.ts).
 */
export function dispatchChain(spec: SubscriptionSpec): Next {
  return chainOf(spec).chain;
}

/** The chain, and for a batch subscription its collector's flush (for when fetching stops). */
function chainOf(spec: SubscriptionSpec): { chain: Next; flush?: () => void } {
  const steps: Step[] = [];
  if (spec.ratePerKey) steps.push(ratePerKey(spec.ratePerKey));
  if (spec.orderingKey) steps.push(inKeyOrder(spec.orderingKey));
  if (spec.ackPolicy === "before") steps.push(ackBefore);
  if (spec.tracer) steps.push(traced(spec.tracer));
  if (spec.stats) steps.push(recordStats(spec.stats));
  steps.push(logFailures(spec.logger, spec.observer));
  if (spec.gate) steps.push(pauseOnRateLimited(spec.gate));
  steps.push(retryPolicy(spec.retry));
  if (spec.timeoutMs !== undefined) steps.push(softTimeout(spec.timeoutMs));
  steps.push(suspectsAlone({ id: spec.id, queue: spec.queue, maxDeliveries: spec.maxDeliveries, sandbox: spec.sandbox, logger: spec.logger }));
  const { runner, id, batch } = spec;
  if (!batch) return { chain: compose(steps, (delivery, signal) => runner.run(id, delivery, signal)) };
  const runBatch = runner.runBatch?.bind(runner);
  if (!runBatch) throw new ConfigError(`${id}: the ${runner.model} runner cannot run batch handlers`);
  const collector = collectBatches({ ...batch, concurrency: spec.concurrency, run: (deliveries, signal) => runBatch(id, deliveries, signal) });
  return { chain: compose(steps, collector), flush: collector.flush };
}

/** The one place a subscription's stack is assembled: its policy chain inside its flow control. */
export function buildSubscription(spec: SubscriptionSpec): SubscriptionLoop {
  const { stats } = spec;
  const { chain, flush } = chainOf(spec);
  return new SubscriptionLoop({
    queue: spec.queue,
    consumer: spec.consumer,
    pool: spec.pool,
    concurrency: spec.concurrency,
    limiter: spec.limiter,
    logger: spec.logger,
    chain,
    onReceived: stats
      ? (count) => {
          stats.received += count;
        }
      : undefined,
    onFatal: spec.onFatal,
    // An adaptive limit is judged by the load it allows: keep every slot of it filled, not half.
    fillEverySlot: spec.batch !== undefined || spec.limiter !== undefined,
    onStopFetching: flush,
    gate: spec.gate,
  });
}
