import {
  AckPolicy,
  type Consumer as PullConsumer,
  type ConsumerConfig,
  DeliverPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import type { NatsClients, NatsConnection } from "./NatsConnection.js";
import { consumerNameFor, queueSubject, streamNameFor, subjectMatches } from "./subjects.js";

/** Where a queue lives in JetStream (mapping: ./subjects.ts). */
export interface QueueTarget {
  queue: string;
  subject: string;
  stream: string;
  consumer: string;
}

const STREAM_NAME_IN_USE = 10058;
const SUBJECTS_OVERLAP = 10065;

/**
 * Finds or creates the stream and the durable pull consumer of each queue, once per queue and
 * broker (the promises are cached; a failed one is forgotten, and so is one the caller reports
 * missing, e.g. a stream deleted meanwhile, so that the next use creates it again).
 *
 * Streams wqueue creates: work-queue retention (a message is removed once acked), file storage, one
 * replica, the server's defaults for limits and the 2-minute dedup window. A stream that exists is
 * used as it is (limits or interest retention included: acked messages then stay as long as it
 * keeps them; the consumer remembers what was acked), except that `?stream=` adds the queue's
 * subject to it when it does not capture it yet. The consumer: explicit acks, deliver all,
 * ack_wait / max_deliver / max_ack_pending from the URL, brought up to date if they differ.
 */
export class StreamResolver {
  readonly #targets = new Map<string, Promise<QueueTarget>>();
  readonly #consumers = new Map<string, Promise<{ target: QueueTarget; consumer: PullConsumer }>>();

  constructor(readonly connection: NatsConnection) {}

  /** The queue's stream, created if no stream captures its subject. */
  target(queue: string): Promise<QueueTarget> {
    return cached(this.#targets, queue, () => this.#ensureStream(queue));
  }

  /** The queue's stream if one exists, without creating anything (browse, backlog). */
  async lookup(queue: string): Promise<QueueTarget | undefined> {
    const known = this.#targets.get(queue);
    if (known) return known.catch(() => undefined);
    const { jsm } = await this.connection.clients();
    const { config } = this.connection;
    const subject = queueSubject(config.subjectPrefix, queue);
    const stream =
      config.stream === undefined
        ? await jsm.streams.find(subject).catch(ifMissing(undefined))
        : await jsm.streams.info(config.stream).then((info) => info.config.name, ifMissing(undefined));
    if (stream === undefined) return undefined;
    return { queue, subject, stream, consumer: consumerNameFor(config.durable, stream, subject) };
  }

  /** The queue's durable pull consumer (and its stream), created or updated as the URL says. */
  consumer(queue: string): Promise<{ target: QueueTarget; consumer: PullConsumer }> {
    return cached(this.#consumers, queue, async () => {
      const target = await this.target(queue);
      return { target, consumer: await this.#ensureConsumer(target) };
    });
  }

  /** Forgets what is known of `queue`: the next use looks (and creates) again. */
  forget(queue: string): void {
    this.#targets.delete(queue);
    this.#consumers.delete(queue);
  }

  async #ensureStream(queue: string): Promise<QueueTarget> {
    const { jsm } = await this.connection.clients();
    const { config, log } = this.connection;
    const subject = queueSubject(config.subjectPrefix, queue);
    const target = (stream: string) => ({ queue, subject, stream, consumer: consumerNameFor(config.durable, stream, subject) });
    const create = (name: string, subjects: string[]) =>
      jsm.streams.add({ name, subjects, retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 1 });

    if (config.stream !== undefined) {
      const name = config.stream;
      const info = await jsm.streams.info(name).catch(ifMissing(undefined));
      if (info === undefined) {
        await create(name, [config.subjectPrefix === "" ? subject : `${config.subjectPrefix}>`]).catch(ifCode(STREAM_NAME_IN_USE));
      } else if (!info.config.subjects?.some((pattern) => subjectMatches(pattern, subject))) {
        await jsm.streams.update(name, { subjects: [...(info.config.subjects ?? []), subject] });
        log("info", `nats ${config.url}: added subject ${subject} to stream ${name}`);
      }
      return target(name);
    }
    const existing = await jsm.streams.find(subject).catch(ifMissing(undefined));
    if (existing !== undefined) return target(existing);
    const name = streamNameFor(subject);
    try {
      await create(name, [subject]); // identical config: succeeds even if another worker just made it
      log("debug", `nats ${config.url}: created stream ${name} for ${subject}`);
      return target(name);
    } catch (error) {
      const code = (error as JetStreamApiError).code;
      if (code === SUBJECTS_OVERLAP) return target(await jsm.streams.find(subject)); // made meanwhile
      if (code !== STREAM_NAME_IN_USE) throw error;
      const subjects = (await jsm.streams.info(name)).config.subjects ?? [];
      throw new Error(
        `queue ${queue}: its stream name ${name} is taken by a stream of other subjects (${subjects.join(", ")}); ` +
          "rename the queue, or put both queues in one stream with ?stream=NAME",
      );
    }
  }

  async #ensureConsumer(target: QueueTarget): Promise<PullConsumer> {
    const { js, jsm }: NatsClients = await this.connection.clients();
    const { config, log } = this.connection;
    const wanted = {
      ack_wait: nanos(config.ackWaitMs),
      max_deliver: config.maxDeliver,
      max_ack_pending: config.maxAckPending,
    };
    const { stream, consumer: name, subject } = target;
    const info = await jsm.consumers.info(stream, name).catch(ifMissing(undefined));
    if (info === undefined) {
      const created: Partial<ConsumerConfig> = {
        ...wanted,
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: subject,
      };
      await jsm.consumers.add(stream, created);
    } else {
      const { config: current } = info;
      if (current.deliver_subject) {
        throw new Error(`consumer ${name} of stream ${stream} is a push consumer; give wqueue its own with ?durable=NAME`);
      }
      if ((current.filter_subject ?? "") !== subject && current.filter_subject !== undefined) {
        throw new Error(`consumer ${name} of stream ${stream} reads ${current.filter_subject}, not ${subject}; use ?durable=NAME`);
      }
      const stale = (Object.keys(wanted) as (keyof typeof wanted)[]).filter((field) => current[field] !== wanted[field]);
      if (stale.length > 0) {
        await jsm.consumers.update(stream, name, wanted);
        log("info", `nats ${config.url}: updated ${stale.join(", ")} of consumer ${name} (stream ${stream})`);
      }
    }
    return js.consumers.get(stream, name);
  }
}

/** The map's promise for `key`, made by `make` if absent; a rejected one is dropped. */
function cached<T>(map: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
  let value = map.get(key);
  if (value === undefined) {
    const made = make();
    value = made;
    map.set(key, made);
    made.catch(() => {
      if (map.get(key) === made) map.delete(key);
    });
  }
  return value;
}

/** A catch handler: stream or consumer not found -> `fallback`; anything else rethrown. */
function ifMissing<T>(fallback: T): (error: unknown) => T {
  return (error) => {
    const name = (error as Error).name;
    if (name === "StreamNotFoundError" || name === "ConsumerNotFoundError") return fallback;
    throw error;
  };
}

/** A catch handler that ignores one JetStream API error code (a race another worker won). */
function ifCode(code: number): (error: unknown) => void {
  return (error) => {
    if (!(error instanceof JetStreamApiError) || error.code !== code) throw error;
  };
}
