import {
  ChangeMessageVisibilityBatchCommand,
  type ChangeMessageVisibilityBatchResult,
  DeleteMessageBatchCommand,
  type DeleteMessageBatchResult,
  type SQSClient,
} from "@aws-sdk/client-sqs";

/**
 * Coalesces the per-message calls of one event-loop turn into SQS batch calls: acks into
 * DeleteMessageBatch, nacks, heartbeats and give-backs into ChangeMessageVisibilityBatch, 10
 * entries per call (SQS's limit), per queue. A worker that finishes 100 messages in one turn sends
 * 10 calls instead of 100, and each message's promise settles with its own entry's result.
 *
 * Entries of one batch may be applied in any order: callers never put two calls for one receipt
 * handle in flight at once (settling is once; ./VisibilityKeeper.ts waits for its heartbeat).
 */
type Operation = "delete" | "visibility";

interface Entry {
  receipt: string;
  seconds: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const BATCH = 10;

/** One entry of a batch call that SQS refused; `name` is SQS's code, e.g. ReceiptHandleIsInvalid. */
export class BatchEntryError extends Error {
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = code;
  }
}

export class BatchCalls {
  readonly #pending = new Map<string, { operation: Operation; url: string; entries: Entry[] }>();
  readonly #inFlight = new Set<Promise<void>>();
  #scheduled = false;

  constructor(readonly client: SQSClient) {}

  delete(url: string, receipt: string): Promise<void> {
    return this.#add("delete", url, receipt, 0);
  }

  /** The message becomes visible again `seconds` from now (0: at once). */
  changeVisibility(url: string, receipt: string, seconds: number): Promise<void> {
    return this.#add("visibility", url, receipt, seconds);
  }

  /** Sends what is pending now and resolves when every call in flight has finished. */
  async flush(): Promise<void> {
    this.#sendPending();
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #add(operation: Operation, url: string, receipt: string, seconds: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const key = `${operation} ${url}`;
      let group = this.#pending.get(key);
      if (group === undefined) {
        group = { operation, url, entries: [] };
        this.#pending.set(key, group);
      }
      group.entries.push({ receipt, seconds, resolve, reject });
      if (group.entries.length >= BATCH) this.#sendGroup(key);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#sendPending());
      }
    });
  }

  #sendPending(): void {
    this.#scheduled = false;
    for (const key of [...this.#pending.keys()]) this.#sendGroup(key);
  }

  #sendGroup(key: string): void {
    const group = this.#pending.get(key);
    if (group === undefined) return;
    this.#pending.delete(key);
    for (let i = 0; i < group.entries.length; i += BATCH) {
      const call = this.#call(group.operation, group.url, group.entries.slice(i, i + BATCH));
      this.#inFlight.add(call);
      void call.finally(() => this.#inFlight.delete(call));
    }
  }

  /** Never rejects: each entry's own promise carries the outcome. */
  async #call(operation: Operation, url: string, entries: Entry[]): Promise<void> {
    let result: DeleteMessageBatchResult | ChangeMessageVisibilityBatchResult;
    try {
      result =
        operation === "delete"
          ? await this.client.send(
              new DeleteMessageBatchCommand({
                QueueUrl: url,
                Entries: entries.map((entry, i) => ({ Id: String(i), ReceiptHandle: entry.receipt })),
              }),
            )
          : await this.client.send(
              new ChangeMessageVisibilityBatchCommand({
                QueueUrl: url,
                Entries: entries.map((entry, i) => ({ Id: String(i), ReceiptHandle: entry.receipt, VisibilityTimeout: entry.seconds })),
              }),
            );
    } catch (error) {
      for (const entry of entries) entry.reject(error);
      return;
    }
    const failed = new Map((result.Failed ?? []).map((failure) => [failure.Id, failure]));
    entries.forEach((entry, i) => {
      const failure = failed.get(String(i));
      if (failure === undefined) entry.resolve();
      else entry.reject(new BatchEntryError(failure.Code ?? "Failed", failure.Message ?? "refused by SQS"));
    });
  }
}
