/**
 * A queue's in-flight limit that finds itself (`concurrency: "auto"`): a gradient limiter in the
 * spirit of Netflix's concurrency-limits (Gradient2). Pure: fed one sample per finished message
 * (its latency, how many were in flight when it started, whether it failed), it answers `limit`.
 *
 * Samples are judged in windows (at least MIN_WINDOW, or as many as the limit, so a window spans
 * about one round of the queue). At the end of a window, with `rtt` its mean latency and
 * `baseline` the lowest window mean of the last BASELINE_WINDOWS windows (the latency with no
 * queueing, re-learnt if the handler's latency really changes):
 *
 * - errors (more than ERROR_RATIO of the window failed): cut, `limit * BACKOFF`;
 * - else `gradient = clamp(TOLERANCE * baseline / rtt, 0.5, 1)`: 1 while latency is flat (up to
 *   TOLERANCE times the baseline), less as it rises. Flat: the limit grows by
 *   `SMOOTHING * sqrt(limit)` (probing for more); rising: it becomes `limit * gradient` at once.
 *   (Gradient2 adds the square root always and smooths both ways, which settles where latency is
 *   well past flat and lets the baseline drift up with it; cutting at once brings the queue back
 *   under the knee, where the next windows measure the baseline again.)
 * - a window whose most in flight stayed under half the limit does not grow it: the queue was not
 *   using what it had (no backlog), so its latency says nothing about a higher limit.
 *
 * Always within [min, max].
 */
export interface AdaptiveLimitOptions {
  min: number;
  max: number;
  initial: number;
}

const MIN_WINDOW = 10;
const BASELINE_WINDOWS = 50;
/** Latency up to this many times the baseline counts as flat. */
const TOLERANCE = 1.2;
const SMOOTHING = 0.3;
const BACKOFF = 0.8;
const ERROR_RATIO = 0.1;

export class AdaptiveLimit {
  readonly min: number;
  readonly max: number;
  #limit: number;
  #count = 0;
  #latencySum = 0;
  #failures = 0;
  #peakInFlight = 0;
  /** Mean latency of the last windows, newest last, for the baseline. */
  readonly #recent: number[] = [];

  constructor(options: AdaptiveLimitOptions) {
    this.min = options.min;
    this.max = options.max;
    this.#limit = clamp(options.initial, this.min, this.max);
  }

  /** Whole messages: what the queue may hold now. */
  get limit(): number {
    return Math.floor(this.#limit);
  }

  /** One finished message: its latency in ms, messages in flight when it started (itself included), and whether it failed. */
  sample(latencyMs: number, inFlight: number, failed: boolean): void {
    this.#count += 1;
    this.#latencySum += latencyMs;
    if (failed) this.#failures += 1;
    if (inFlight > this.#peakInFlight) this.#peakInFlight = inFlight;
    if (this.#count >= Math.max(MIN_WINDOW, this.limit)) this.#endWindow();
  }

  #endWindow(): void {
    const rtt = this.#latencySum / this.#count;
    const failing = this.#failures > this.#count * ERROR_RATIO;
    const used = this.#peakInFlight >= this.#limit / 2;
    this.#count = 0;
    this.#latencySum = 0;
    this.#failures = 0;
    this.#peakInFlight = 0;
    if (failing) {
      this.#limit = clamp(this.#limit * BACKOFF, this.min, this.max);
      return;
    }
    this.#recent.push(rtt);
    if (this.#recent.length > BASELINE_WINDOWS) this.#recent.shift();
    const baseline = Math.min(...this.#recent);
    const gradient = rtt <= 0 ? 1 : clamp((TOLERANCE * baseline) / rtt, 0.5, 1);
    if (gradient < 1) {
      // Rising latency: cut at once, below the knee, so the next windows see the baseline again.
      this.#limit = clamp(this.#limit * gradient, this.min, this.max);
    } else if (used) {
      // Flat: probe upwards, smoothed.
      this.#limit = clamp(this.#limit + Math.sqrt(this.#limit) * SMOOTHING, this.min, this.max);
    }
  }
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}
