import type { RetryOptions } from "../app/types.js";

export const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 60_000 };

/**
 * Delay before retrying after failed attempt `attempt` (1-based): exponential with "full jitter"
 * (a uniform draw in [cap/2, cap]), so a burst of failures does not come back as a burst.
 */
export function retryDelayMs(attempt: number, policy: Required<RetryOptions>, random = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(cap / 2 + (random() * cap) / 2);
}
