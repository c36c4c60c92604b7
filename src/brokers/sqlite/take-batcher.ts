import { randomUUID } from "node:crypto";
import type { MessageStore, TakenMessage } from "./MessageStore.js";

interface TakeRequest {
  queue: string;
  max: number;
  resolve(taken: { rows: TakenMessage[]; receipt: string }): void;
  reject(error: unknown): void;
}

/**
 * Gathers the takes of one SqliteBroker's consumers asked in the same turn of the event loop and
 * runs them in one write transaction (MessageStore.takeMany): a worker over 1,000 queues with a
 * backlog on each commits once per turn, not once per queue. Each take keeps its own receipt, so
 * settling stays per delivery. Costs one turn of latency per take.
 */
export class TakeBatcher {
  #pending: TakeRequest[] = [];

  constructor(
    readonly store: () => MessageStore,
    readonly visibilityMs: number,
  ) {}

  take(queue: string, max: number): Promise<{ rows: TakenMessage[]; receipt: string }> {
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) setImmediate(this.#flush);
      this.#pending.push({ queue, max, resolve, reject });
    });
  }

  readonly #flush = (): void => {
    const batch = this.#pending;
    this.#pending = [];
    try {
      const now = Date.now();
      const requests = batch.map(({ queue, max }) => ({ queue, max, receipt: randomUUID() }));
      const taken = this.store().takeMany(requests, now, now + this.visibilityMs);
      for (const [index, request] of batch.entries()) {
        request.resolve({ rows: taken[index] ?? [], receipt: requests[index]?.receipt ?? "" });
      }
    } catch (error) {
      for (const request of batch) request.reject(error);
    }
  };
}
