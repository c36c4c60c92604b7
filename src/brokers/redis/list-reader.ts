import { BlockingReader, type ReadRequest } from "./blocking-reader.js";
import { DISCOVER_MS, moveDueDelayed } from "./delayed-set.js";
import { pipelined } from "./pipelined.js";

export { READER_SILENCE_MS } from "./blocking-reader.js";


/**
 * The plain list mode's blocking connection (mode=list), multiplexing the receives of all consumers
 * of a broker instance. Each round it moves due delayed messages (when some may be due), then LPOPs
 * up to `max` for every pending receive in one round trip; only when nothing came does it BLPOP all
 * their queues (the loop of ./blocking-reader.ts; on a Cluster it polls instead). What BLPOP pops
 * is gone from Redis: at most once.
 */
export class ListReader extends BlockingReader<Buffer> {
  #nextMoveAt = 0;

  /** A delayed message of `queue` is due in `delayMs`: wake up in time to move it. */
  noteDelayed(queue: string, delayMs: number): void {
    const due = Date.now() + delayMs;
    if (!this.queues.includes(queue) || due >= this.#nextMoveAt) return;
    this.#nextMoveAt = due;
    this.wakeBy(due);
  }

  protected override onNewQueue(): void {
    this.#nextMoveAt = 0; // a queue new to this reader may have delayed messages due already
  }

  protected dueAt(): number {
    return this.#nextMoveAt;
  }

  protected async housekeep(): Promise<void> {
    const now = Date.now();
    this.#nextMoveAt = now + DISCOVER_MS;
    this.#nextMoveAt = Math.min(this.#nextMoveAt, now + (await moveDueDelayed(this.client, this.queues)));
  }

  /**
   * LPOP for every pending receive in one round trip; true when any receive was answered. A reply
   * error (a key of the wrong type) fails that receive only; a connection error fails the round.
   */
  protected async readReady(batch: ReadRequest<Buffer>[]): Promise<boolean> {
    const replies = await pipelined(this.client, batch, (pipeline, request) => pipeline.lpopBuffer(request.queue, request.max));
    let answered = false;
    for (const [index, request] of batch.entries()) {
      const [error, items] = replies[index] ?? [new Error("no reply"), null];
      if (error && error.name !== "ReplyError") throw error;
      if (error) this.finish(request, new Error(`queue ${request.queue}: ${error.message}`));
      else if (Array.isArray(items) && items.length > 0) this.finish(request, items as Buffer[]);
      else continue;
      answered = true;
    }
    return answered;
  }

  protected async readBlocking(waitMs: number): Promise<void> {
    const reply = await this.client.blpopBuffer(this.pendingQueues(), (waitMs / 1000).toFixed(3));
    if (reply === null) return;
    const [key, item] = reply;
    const queue = key.toString();
    const request = this.pending.find((candidate) => candidate.queue === queue);
    if (request) this.finish(request, [item]);
    else await this.commands.lpush(queue, item); // unreachable: only this loop removes requests
  }
}
