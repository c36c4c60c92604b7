import type { ChannelModel, ConfirmChannel, Message } from "amqplib";
import type { Outbound } from "./message-codec.js";

/** RabbitMQ returned a mandatory message: no queue by that name exists (any more). */
export class UnroutableError extends Error {
  override name = "UnroutableError";
}

/**
 * The publishing side of one connection: a confirm channel (opened again should a channel error
 * close it) shared by publish(), nack and dead letters. `send` resolves once the broker confirmed
 * every message of the batch (for a durable queue and a persistent message: written to disk), and
 * rejects on the first nack, return or channel loss. Each message that was confirmed is marked
 * `confirmed`, so after a lost connection the caller sends only the others again.
 */
export class ConfirmPublisher {
  #channel: Promise<ConfirmChannel> | undefined;
  /** message-ids RabbitMQ returned as unroutable; the confirm of each follows its return. */
  readonly #returned = new Set<string>();
  #lastError: Error | undefined;

  constructor(readonly model: ChannelModel) {}

  async send(queue: string, batch: readonly Outbound[]): Promise<void> {
    const channel = await this.#open();
    const confirms = new ConfirmCount();
    for (const message of batch) {
      if (message.confirmed) continue;
      confirms.expect();
      const writable = channel.sendToQueue(queue, message.body, message.options, (error: unknown) => {
        const id = message.options.messageId as string;
        if (error) confirms.fail(this.#lastError ?? (error as Error));
        else if (this.#returned.delete(id)) confirms.fail(new UnroutableError(`no queue named ${queue}`));
        else {
          message.confirmed = true;
          confirms.confirm();
        }
      });
      // The message is buffered either way; false asks the writer to wait for the socket.
      if (!writable) await drained(channel);
    }
    await confirms.all();
  }

  #open(): Promise<ConfirmChannel> {
    if (this.#channel === undefined) {
      const opening = this.model.createConfirmChannel().then((channel) => {
        this.#lastError = undefined;
        channel.on("error", (error: Error) => {
          this.#lastError = error;
        });
        channel.on("return", (message: Message) => {
          const id = message.properties.messageId as string | undefined;
          if (id !== undefined) this.#returned.add(id);
        });
        channel.on("close", () => {
          if (this.#channel === opening) this.#channel = undefined;
        });
        return channel;
      });
      this.#channel = opening;
      opening.catch(() => {
        if (this.#channel === opening) this.#channel = undefined;
      });
    }
    return this.#channel;
  }
}

/** Counts outstanding confirms of one batch; no promise exists until all() is called. */
class ConfirmCount {
  #waiting = 0;
  #error: Error | undefined;
  #resolve: (() => void) | undefined;
  #reject: ((error: Error) => void) | undefined;

  expect(): void {
    this.#waiting += 1;
  }

  confirm(): void {
    this.#waiting -= 1;
    if (this.#waiting === 0 && this.#error === undefined) this.#resolve?.();
  }

  fail(error: Error): void {
    this.#waiting -= 1;
    if (this.#error !== undefined) return;
    this.#error = error;
    this.#reject?.(error);
  }

  all(): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#waiting === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }
}

function drained(channel: ConfirmChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      channel.off("drain", done);
      channel.off("close", done);
      resolve();
    };
    channel.on("drain", done);
    channel.on("close", done);
  });
}
