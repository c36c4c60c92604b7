import { Fifo } from "./fifo.js";

/** What the window needs of a record: whether it is finished, and whether a handler has it now. */
export interface WindowRecord {
  done: boolean;
  out: boolean;
}

/**
 * The lowest-unfinished commit window of a log (a Kafka partition, a Kinesis shard): every
 * unfinished record of one assignment in log order, in one array with two cursors. `head` is the
 * lowest unfinished record, and so the only safe commit point: a crash then never skips a record,
 * whatever finished out of order above it. `next` is the next record never handed out; records
 * given back come round again through `due` (at once, or after a delay).
 *
 * Fields are open for the owners' hand-out and metadata loops (hot paths); the methods keep the
 * cursors, the count of records out and the delay timers consistent.
 */
export class CommitWindow<R extends WindowRecord> {
  records: R[] = [];
  head = 0;
  next = 0;
  /** Records dropped from the front so far: the position of records[0] in the assignment. */
  dropped = 0;
  /** Records out with handlers. */
  outstanding = 0;
  /** Given back and ready again: handed out before fresh ones. */
  readonly due = new Fifo<R>();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(
    /** A delayed record is due (`later`): the owner queues it (due.push) and wakes its consumer. */
    readonly onDelayPassed: (record: R) => void,
  ) {}

  /** Records given back with a delay that has not passed yet. */
  get delayed(): number {
    return this.#timers.size;
  }

  handOut(record: R): void {
    record.out = true;
    this.outstanding += 1;
  }

  /** The record is no longer with a handler (settled, or given back). */
  back(record: R): void {
    if (!record.out) return;
    record.out = false;
    this.outstanding -= 1;
  }

  /**
   * The record is finished. Returns the last record of the finished prefix when the head moved
   * past it (the new commit point is just after it), else undefined.
   */
  finish(record: R): R | undefined {
    this.back(record);
    record.done = true;
    const records = this.records;
    const from = this.head;
    let head = from;
    while (head < records.length && (records[head] as R).done) head += 1;
    const passed = head > from ? (records[head - 1] as R) : undefined;
    // Drop the finished prefix once it is long and most of the array (cursors move with it).
    if (head >= 1024 && head * 2 >= records.length) {
      this.records = records.slice(head);
      this.next -= head;
      this.dropped += head;
      head = 0;
    }
    this.head = head;
    return passed;
  }

  /** Calls onDelayPassed(record) after `delayMs`, unless the record is finished or the window cleared meanwhile. */
  later(record: R, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!record.done) this.onDelayPassed(record);
    }, delayMs);
    this.#timers.add(timer);
  }

  /** Ends the assignment: everything is dropped, no timer fires. */
  clear(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.records = [];
    this.head = 0;
    this.next = 0;
    this.due.clear();
    this.outstanding = 0;
  }
}
