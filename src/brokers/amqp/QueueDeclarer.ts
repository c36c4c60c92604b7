import type { Channel, ChannelModel, Options } from "amqplib";
import { ConfigError } from "../../errors.js";
import type { AmqpUrl, QueueType } from "./amqp-url.js";
import type { AmqpEventLog } from "./AmqpConnection.js";
import { delayQueueName } from "./delay-buckets.js";
import { isStreamQueue, streamRefusal } from "./stream-queues.js";

/**
 * Declares the queues wqueue uses on one connection, each once (a later use awaits the same
 * declaration): the queue itself (`durable`, `queueType` from the URL), its dead-letter queue
 * (always durable) and its delay queues (see ./delay-buckets.ts).
 *
 * A queue that already exists with other arguments (declared by a producer, or durable where this
 * URL says transient) makes RabbitMQ refuse the declaration with 406 PRECONDITION_FAILED and close
 * the channel; so does a user without the configure permission (403 ACCESS_REFUSED). wqueue then
 * checks that the queue exists and uses it as it is, with a warning, unless it is a stream queue,
 * which wqueue refuses with a ConfigError (./stream-queues.ts), or the URL asked for priorities
 * (`?maxPriority`) and the queue lacks `x-max-priority`: a ConfigError saying how to move it
 * (RabbitMQ cannot add the argument to a queue). So declarations run one at a
 * time on a channel of their own, which such a refusal may close without touching the channels
 * that publish and consume.
 */
export class QueueDeclarer {
  readonly #declared = new Map<string, Promise<void>>();
  #channel: Promise<Channel> | undefined;
  #last: Promise<unknown> = Promise.resolve();

  readonly durable: boolean;
  readonly queueType: QueueType;
  readonly url: string;
  readonly #maxPriority: number | undefined;

  constructor(
    readonly model: ChannelModel,
    config: Pick<AmqpUrl, "durable" | "queueType" | "url" | "maxPriority">,
    readonly log: AmqpEventLog,
  ) {
    this.durable = config.durable;
    this.queueType = config.queueType;
    this.url = config.url;
    this.#maxPriority = config.maxPriority;
  }

  /** A queue messages are published to and consumed from (with `x-max-priority` when the URL asks). */
  queue(name: string): Promise<void> {
    const args = this.#typeArguments();
    if (this.#maxPriority !== undefined) args["x-max-priority"] = this.#maxPriority;
    return this.#declare(name, { durable: this.durable, arguments: args });
  }

  /** A dead-letter queue: durable whatever the URL says, since dead letters wait for a person. */
  deadLetterQueue(name: string): Promise<void> {
    return this.#declare(name, { durable: true, arguments: this.#typeArguments() });
  }

  /** The delay queue of `queue` for one bucket, whose expired messages go back to `queue`. */
  async delayQueue(queue: string, bucketMs: number): Promise<string> {
    const name = delayQueueName(queue, bucketMs);
    const args: Record<string, unknown> = {
      ...this.#typeArguments(),
      "x-message-ttl": bucketMs,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": queue,
    };
    if (this.queueType === "quorum") {
      // Quorum queues dead-letter at most once unless told otherwise; at-least-once needs reject-publish.
      args["x-dead-letter-strategy"] = "at-least-once";
      args["x-overflow"] = "reject-publish";
    }
    await Promise.all([this.queue(queue), this.#declare(name, { durable: this.durable, arguments: args })]);
    return name;
  }

  /** Declares `name` again on its next use (RabbitMQ said it does not exist). */
  forget(name: string): void {
    this.#declared.delete(name);
  }

  #typeArguments(): Record<string, unknown> {
    // Classic is RabbitMQ's default; not naming it matches queues that producers declared bare.
    return this.queueType === "quorum" ? { "x-queue-type": "quorum" } : {};
  }

  #declare(name: string, options: Options.AssertQueue): Promise<void> {
    let declared = this.#declared.get(name);
    if (declared === undefined) {
      declared = this.#serially(() => this.#assert(name, options));
      this.#declared.set(name, declared);
      declared.catch(() => this.#declared.delete(name)); // the next use tries again
    }
    return declared;
  }

  async #assert(name: string, options: Options.AssertQueue): Promise<void> {
    try {
      await (await this.#open()).assertQueue(name, options);
    } catch (error) {
      const { code } = error as { code?: number };
      if (code !== 406 && code !== 403) throw error;
      if (code === 406 && isStreamQueue(error as Error)) throw new ConfigError(streamRefusal(this.url, name));
      if (code === 406 && options.arguments?.["x-max-priority"] !== undefined && /x-max-priority/.test((error as Error).message)) {
        throw new ConfigError(priorityRefusal(this.url, name, options.arguments["x-max-priority"] as number));
      }
      await (await this.#open()).checkQueue(name); // still fails if it does not exist
      const why = (error as Error).message;
      const problem = code === 406 ? "exists with other arguments" : "may not be declared by this user";
      this.log("warn", `queue ${name} ${problem}; using it as it is (${why})`);
    }
  }

  #serially<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#last.then(work, work);
    this.#last = result.catch(() => {});
    return result;
  }

  /** The declaring channel, opened again after a refusal closed it. */
  #open(): Promise<Channel> {
    if (this.#channel === undefined) {
      const opening = this.model.createChannel().then((channel) => {
        channel.on("error", () => {}); // the failing assertQueue reports it
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

/**
 * RabbitMQ cannot change an existing queue's arguments, and a queue without `x-max-priority`
 * would ignore every priority: refusing beats a warning the user may never read.
 */
function priorityRefusal(url: string, queue: string, maxPriority: number): string {
  return `broker ${url}: queue ${queue} exists without x-max-priority=${maxPriority} (or with another value), and RabbitMQ cannot change a queue's arguments. ` +
    `To move it: stop its producers, let a worker without ?maxPriority drain it, delete it (rabbitmqctl delete_queue ${queue}), then start with ?maxPriority=${maxPriority}; ` +
    "or use a new queue name. Without ?maxPriority the queue is used as it is, with no priorities";
}
