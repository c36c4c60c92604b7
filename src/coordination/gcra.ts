import type { RateLimit } from "./CoordinationStore.js";

/**
 * GCRA (the generic cell rate algorithm, as in redis-cell and Stripe's limiter) with a small burst:
 * one permit every `perMs / max` ms, and up to `burst` at once after a quiet spell. The state is one
 * number per queue, the theoretical arrival time (TAT) of the next permit. In any window of `perMs`
 * at most `max + burst - 1` permits are granted, so the burst is kept small: a twentieth of `max`
 * (at least 1), enough for a fast queue to receive in batches. The Redis store runs the same
 * arithmetic in Lua (RedisCoordinationStore.ts); the two must stay alike.
 */
export function gcraParams(limit: RateLimit): { interval: number; burst: number } {
  return { interval: limit.perMs / limit.max, burst: Math.max(1, Math.floor(limit.max / 20)) };
}

export function gcraAdmit(tat: number, now: number, want: number, limit: RateLimit): { granted: number; waitMs: number; tat: number } {
  const { interval, burst } = gcraParams(limit);
  const base = Math.max(tat, now);
  // A permit is due while base + interval <= now + burst * interval (1e-9: float noise).
  const granted = Math.min(want, Math.floor((now + burst * interval - base) / interval + 1e-9));
  if (granted <= 0) return { granted: 0, waitMs: Math.max(1, Math.ceil(base + interval - burst * interval - now)), tat };
  return { granted, waitMs: 0, tat: base + granted * interval };
}
