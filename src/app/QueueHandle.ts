import type { Handler, ListenOptions, PublishOptions } from "./types.js";
import type { WQueue } from "./WQueue.js";
import { ConfigError } from "../errors.js";

/**
 * One queue of an app with its options, typed by its schema: `publish()` takes what the schema
 * accepts (its input type), `listen()`'s handler gets what it returns (its output type).
 * From `app.queue(name, options)`; registering and publishing go through the app.
 */
export class QueueHandle<Input = unknown, Output = Input> {
  constructor(
    readonly app: WQueue,
    readonly name: string,
    readonly options: Readonly<ListenOptions> = {},
  ) {}

  /** Registers the handler with the queue's options (`options` adds to them). */
  listen(handler: Handler<Output>, options: Omit<ListenOptions, "schema"> = {}): Handler<Output> {
    const merged = { ...this.options, ...options };
    if ("batch" in merged) throw new ConfigError(`queue("${this.name}").listen: batch handlers register with app.listenEvents(queue, handler, { batch })`);
    return this.app.listenEvents<Output>(this.name, handler, merged);
  }

  /** Publishes to the queue on its broker. The body is not validated here: the worker validates it. */
  publish(body: Input, options: PublishOptions = {}): Promise<void> {
    return this.app.publish(this.name, body, { broker: this.options.broker, ...options });
  }
}
