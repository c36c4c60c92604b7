import type { Broker } from "../brokers/contract.js";
import { filterQueues, matchesQueuePattern } from "../brokers/queue-pattern.js";
import { serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";

/** How often a pattern subscription lists its broker's queues again, unless `discoverMs` says. */
export const DISCOVER_MS = 5000;

export interface QueueDiscoveryOptions {
  pattern: string;
  broker: Broker;
  /** Milliseconds between listings after the first. */
  everyMs: number;
  logger: Logger;
  /** Whether a matching queue is someone else's (an exact subscription, an earlier pattern, the dead-letter queue). */
  taken: (queue: string) => boolean;
  /** Opens a queue found for the first time; after ready, a rejection is logged and the queue tried again next round. */
  open: (queue: string) => Promise<void>;
}

/**
 * One pattern subscription's watch over its broker: lists the queues matching the pattern
 * (Broker.listQueues) once before `ready`, then every `everyMs`, and opens each new one exactly
 * once. A queue created after `ready` is therefore consumed within `everyMs` plus one listing, or
 * at once on a broker that tells of writes (watchQueues). A listing that fails is logged and
 * retried on the next round (the queues already open go on).
 */
export class QueueDiscovery {
  readonly #options: QueueDiscoveryOptions;
  readonly #opened = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #opening: Promise<void> | undefined;
  /** A round was asked for while one ran. */
  #again = false;
  #unwatch: (() => void) | undefined;
  #stopped = false;

  constructor(options: QueueDiscoveryOptions) {
    this.#options = options;
  }

  get pattern(): string {
    return this.#options.pattern;
  }

  get everyMs(): number {
    return this.#options.everyMs;
  }

  /** The first listing: its errors (e.g. a broker that refuses the listing) fail the start. */
  async first(): Promise<void> {
    await this.#discover(true);
  }

  /**
   * Lists again every `everyMs` until stop(), and at once when the broker tells of a write to a
   * matching queue not open yet (Broker.watchQueues: PostgreSQL).
   */
  start(): void {
    if (this.#stopped || this.#timer) return;
    // Not unref'd: a worker whose pattern matches nothing yet must stay up waiting.
    this.#timer = setInterval(() => this.#runRound(), this.#options.everyMs);
    const { broker, pattern, taken } = this.#options;
    this.#unwatch = broker.watchQueues?.((queue) => {
      if (!this.#opened.has(queue) && !taken(queue) && matchesQueuePattern(pattern, queue)) this.#runRound();
    });
  }

  /** One listing now; asked while one runs, another follows it (it may have listed too early). */
  #runRound(): void {
    if (this.#stopped) return;
    if (this.#round) {
      this.#again = true;
      return;
    }
    this.#again = false;
    this.#round = this.#discover(false)
      .catch((error: unknown) => {
        const { pattern, broker } = this.#options;
        this.#options.logger.warn({ pattern, broker: broker.url, err: serializeError(error) }, `listing queues matching ${pattern} failed; retrying`);
      })
      .finally(() => {
        this.#round = undefined;
        if (this.#again) this.#runRound();
      });
  }

  /**
   * No more listings; resolves once a queue being opened is open (the worker then stops it with the
   * others). A listing still waiting on the broker is not waited for: what it brings is dropped.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#unwatch?.();
    await this.#opening?.catch(() => {}); // a failed open was logged by its round
  }

  /** `strict` (before ready): a queue that cannot be opened fails the start instead of waiting a round. */
  async #discover(strict: boolean): Promise<void> {
    const { pattern, broker, taken, open, logger } = this.#options;
    const listed = await (broker.listQueues as (pattern: string) => Promise<string[]>).call(broker, pattern);
    for (const queue of filterQueues(pattern, listed)) {
      if (this.#stopped) return;
      if (this.#opened.has(queue) || taken(queue)) continue;
      this.#opened.add(queue);
      try {
        this.#opening = open(queue);
        await this.#opening;
      } catch (error) {
        this.#opened.delete(queue);
        if (strict) throw error;
        logger.warn({ pattern, queue, err: serializeError(error) }, `${queue} (matching ${pattern}) could not be opened; trying again next round`);
      }
    }
  }
}
