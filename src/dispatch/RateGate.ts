import type { CoordinationStore, RateLimit } from "../coordination/CoordinationStore.js";
import { serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";

export interface RateGateOptions {
  queue: string;
  /** Where the limit and the pause are shared; undefined: this worker only (a local pause). */
  store: CoordinationStore | undefined;
  /** `rateLimit` of the queue, shared by every worker of the app. */
  limit: RateLimit | undefined;
  logger: Logger;
}

const BACKOFF_START_MS = 100;
/** A pause-only gate asks again after a receive that waited longer than this. */
const PAUSE_RECHECK_MS = 50;
/**
 * A pause-only gate trusts a "not paused" answer this long: a busy queue then reads the store at
 * most ~50 times a second instead of adding a round trip to every receive (queues without a
 * rateLimit should not pay for a pause they may never see), and a pause reaches the other workers
 * within this plus one round trip.
 */
const PAUSE_CLEAR_MS = 20;
const BACKOFF_MAX_MS = 5000;

/**
 * The flow-control gate a subscription passes before each receive: permits from the queue's shared
 * rate limit, and none while the queue is paused (RateLimited, on any worker). The loop receives at
 * most what the gate admitted and refunds what the receive did not bring, so credit follows the
 * limit: nothing is fetched early, and a message that waits is neither failed nor counted.
 *
 * When the coordination store fails: with a rate limit the gate fails closed (admits nothing, asks
 * again with backoff up to 5 s, logs once per outage), since the limit usually guards someone
 * else's quota; without one (pause only) it fails open, and skips the store for the backoff.
 */
export class RateGate {
  readonly #options: RateGateOptions;
  /** This worker's own pause (RateLimited thrown here): stops at once, before the store hears. */
  #localPauseUntil = 0;
  #failures = 0;
  /** Pause-only gates: the store said "not paused" (or is down, failing open): skip it until then. */
  #skipStoreUntil = 0;

  constructor(options: RateGateOptions) {
    this.#options = options;
  }

  /**
   * Permits for up to `want` messages (at least 1 unless `signal` aborted, then 0); waits as long
   * as the gate is shut. Synchronous when there is nothing to ask (no store, no pause here).
   */
  take(want: number, signal: AbortSignal): number | Promise<number> {
    const { store, limit } = this.#options;
    const now = Date.now();
    if (this.#localPauseUntil <= now && (store === undefined || (limit === undefined && now < this.#skipStoreUntil))) return want;
    return this.#take(want, signal);
  }

  async #take(want: number, signal: AbortSignal): Promise<number> {
    const { store, limit, queue, logger } = this.#options;
    while (!signal.aborted) {
      const localWait = this.#localPauseUntil - Date.now();
      if (localWait > 0) {
        await sleep(localWait, signal);
        continue;
      }
      if (store === undefined || (limit === undefined && Date.now() < this.#skipStoreUntil)) return want;
      try {
        const { granted, waitMs } = await store.admit(queue, want, limit);
        if (this.#failures > 0) logger.info({ queue }, `${queue}: the coordination store ${store.url} answers again`);
        this.#failures = 0;
        if (granted > 0) {
          if (limit === undefined) this.#skipStoreUntil = Date.now() + PAUSE_CLEAR_MS;
          return granted;
        }
        await sleep(waitMs, signal);
      } catch (error) {
        this.#failures += 1;
        const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** (this.#failures - 1));
        if (this.#failures === 1) {
          const what = limit === undefined ? "fetching without the shared pause" : "the rate-limited queue waits";
          logger.warn({ queue, err: serializeError(error) }, `${queue}: the coordination store ${store.url} failed; ${what} until it answers`);
        }
        if (limit === undefined) {
          this.#skipStoreUntil = Date.now() + backoff;
          return want;
        }
        await sleep(backoff, signal);
      }
    }
    return 0;
  }

  /**
   * After a receive that waited `waitedMs` for messages: were its permits taken so long ago that
   * the limit moved on, or a pause may have begun meanwhile? Then renew() before they start.
   */
  stale(waitedMs: number): boolean {
    const { limit, store } = this.#options;
    if (store === undefined) return this.#localPauseUntil > Date.now();
    return waitedMs >= (limit === undefined ? PAUSE_RECHECK_MS : limit.perMs / limit.max);
  }

  /** Takes `count` fresh permits for messages a stale() receive brought, refunding the stale ones. */
  async renew(count: number, signal: AbortSignal): Promise<void> {
    this.refund(count);
    for (let missing = count; missing > 0 && !signal.aborted; ) missing -= await this.take(missing, signal);
  }

  /** Gives back permits nobody used (a receive brought fewer messages than admitted). */
  refund(count: number): void {
    const { store, limit, queue, logger } = this.#options;
    if (count <= 0 || store === undefined || limit === undefined) return;
    store.refund(queue, count, limit).catch((error: unknown) => logger.debug({ queue, err: serializeError(error) }, `${queue}: refund of ${count} permit(s) failed`));
  }

  /** Pauses the queue for `ms`: here at once, on every other worker through the store. */
  pause(ms: number): void {
    const { store, queue, logger } = this.#options;
    this.#localPauseUntil = Math.max(this.#localPauseUntil, Date.now() + ms);
    this.#skipStoreUntil = 0;
    logger.info({ queue, pauseMs: ms }, `${queue}: paused for ${ms} ms (RateLimited)`);
    store?.pause(queue, ms).catch((error: unknown) =>
      logger.warn({ queue, err: serializeError(error) }, `${queue}: could not share the pause through ${store.url}; only this worker pauses`),
    );
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(1, ms));
    signal.addEventListener("abort", done, { once: true });
  });
}
