/**
 * What the worker processes and hosts of one app share to coordinate flow control: a lease per
 * cron tick, a rate limit per queue and a "paused until" per queue. One small interface, two
 * implementations (Redis: one Lua script per operation, on Redis's clock; SQLite: one transaction
 * per operation, on the machine's clock). Chosen by `open-coordination-store.ts`.
 */
export interface CoordinationStore {
  /** Redacted: the only form that goes into messages. */
  readonly url: string;
  /**
   * Up to `want` permits for `queue` now. 0 while the queue is paused (`waitMs`: until the pause
   * ends) or over `limit` (`waitMs`: until the next permit is due). Without `limit` only the pause
   * is checked (and `want` granted when there is none).
   */
  admit(queue: string, want: number, limit: RateLimit | undefined): Promise<Admission>;
  /** Gives back `count` permits admit() granted and nobody used (a receive that brought fewer). */
  refund(queue: string, count: number, limit: RateLimit): Promise<void>;
  /** Pauses `queue` for every worker for `ms` from now; a pause that ends later stays as it is. */
  pause(queue: string, ms: number): Promise<void>;
  /** Takes lease `key` for `ttlMs` unless someone holds it: true for the one caller that got it. */
  claim(key: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** At most `max` messages of a queue start per `perMs`, across every worker of the app. */
export interface RateLimit {
  max: number;
  perMs: number;
}

export interface Admission {
  granted: number;
  /** With granted 0: how long until asking again makes sense. */
  waitMs: number;
}
