import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type QueueAttributeName,
  type SQSClient,
  SetQueueAttributesCommand,
} from "@aws-sdk/client-sqs";
import { defaultDeadLetterQueue } from "../dead-letter.js";
import { sqsQueueName } from "./queue-names.js";
import { isQueueMissing } from "./sqs-client.js";

/** What the adapter needs to know of one SQS queue. */
export interface QueueInfo {
  url: string;
  fifo: boolean;
  /** FIFO queues only: the queue deduplicates by body itself, so no MessageDeduplicationId is sent. */
  contentDeduplication: boolean;
}

/**
 * wqueue queue name -> SQS queue (./queue-names.ts), created on first use and cached per name for
 * the broker's life. An existing queue is used as it is (GetQueueUrl first), whatever its
 * attributes, so queues made by Terraform or the console keep their settings; a missing one is
 * created with defaults (and FifoQueue for `.fifo` names). The visibility timeout is not a queue
 * attribute here: every ReceiveMessage states its own.
 *
 * With `redrive` (the URL's `?redrive=N`), every queue except dead-letter queues (`*.dead`) gets a
 * RedrivePolicy to `<queue>.dead` with maxReceiveCount N, set on the queue whether this adapter
 * created it or not (SetQueueAttributes, once per queue per broker).
 *
 * forget(): a call failed with QueueDoesNotExist (deleted meanwhile, a local server restarted
 * empty): the next lookup creates it again.
 */
export class QueueDirectory {
  readonly #known = new Map<string, Promise<QueueInfo>>();

  constructor(
    readonly client: SQSClient,
    readonly redrive: number | undefined,
    readonly allFifo: boolean,
  ) {}

  /** Rejects with ConfigError for a name SQS cannot have, or with the SDK's error. */
  info(queue: string): Promise<QueueInfo> {
    let info = this.#known.get(queue);
    if (info === undefined) {
      info = this.#resolve(queue);
      this.#known.set(queue, info);
      info.catch(() => {
        if (this.#known.get(queue) === info) this.#known.delete(queue);
      });
    }
    return info;
  }

  /** Also forgets `<queue>.dead`: a server that lost one queue (a restart) lost that too. */
  forget(queue: string): void {
    this.#known.delete(queue);
    this.#known.delete(defaultDeadLetterQueue(queue));
  }

  async #resolve(queue: string): Promise<QueueInfo> {
    const { name, fifo } = sqsQueueName(queue, this.allFifo);
    const url = (await this.#existing(name)) ?? (await this.#create(name, fifo));
    if (this.redrive !== undefined && !queue.endsWith(".dead")) await this.#setRedrive(url, queue);
    let contentDeduplication = false;
    if (fifo) {
      const attributes = await this.#attributes(url, ["ContentBasedDeduplication"]);
      contentDeduplication = attributes.ContentBasedDeduplication === "true";
    }
    return { url, fifo, contentDeduplication };
  }

  async #existing(name: string): Promise<string | undefined> {
    try {
      return (await this.client.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    } catch (error) {
      if (isQueueMissing(error)) return undefined;
      throw error;
    }
  }

  /** CreateQueue returns the existing queue's URL when another process created it meanwhile. */
  async #create(name: string, fifo: boolean): Promise<string> {
    const Attributes: Partial<Record<QueueAttributeName, string>> = fifo ? { FifoQueue: "true" } : {};
    const created = await this.client.send(new CreateQueueCommand({ QueueName: name, Attributes }));
    if (created.QueueUrl === undefined) throw new Error(`SQS created queue ${name} but returned no URL`);
    return created.QueueUrl;
  }

  async #setRedrive(url: string, queue: string): Promise<void> {
    const dead = await this.info(defaultDeadLetterQueue(queue));
    const { QueueArn } = await this.#attributes(dead.url, ["QueueArn"]);
    if (QueueArn === undefined) throw new Error(`SQS returned no ARN for the dead-letter queue of ${queue}`);
    const RedrivePolicy = JSON.stringify({ deadLetterTargetArn: QueueArn, maxReceiveCount: this.redrive });
    await this.client.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { RedrivePolicy } }));
  }

  async #attributes(url: string, names: QueueAttributeName[]): Promise<Partial<Record<string, string>>> {
    const answer = await this.client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names }));
    return answer.Attributes ?? {};
  }
}
