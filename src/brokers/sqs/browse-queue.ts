import { ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { BrowsedMessage } from "../contract.js";
import type { BatchCalls } from "./BatchCalls.js";
import { decodeMessage } from "./message-codec.js";
import type { QueueInfo } from "./QueueDirectory.js";

/** How long a listed message is hidden while the listing pages on (it is made visible again right after). */
const LISTING_HIDE_SECONDS = 30;

/**
 * Up to `limit` messages of an SQS queue, looked at and given back at once (SQS has no peek):
 * ReceiveMessage, 10 at a time, hiding each page for LISTING_HIDE_SECONDS so that the next page
 * shows the next messages, then ChangeMessageVisibility(0) for every one, batched, before this
 * resolves. A consumer of the queue sees a listed message again at once; one that polls during
 * the listing misses it until then. Should the lister die in between, the messages come back after
 * those 30 seconds: nothing is lost.
 *
 * What the listing costs, SQS being what it is: every listed message's ApproximateReceiveCount
 * grows by one (so on a queue with a RedrivePolicy, e.g. `?redrive=N`, N listings of a message
 * move it to its dead-letter queue; wqueue's `<queue>.dead` queues have none), and the order is
 * SQS's (none on a standard queue; per message group on FIFO, where a listed group is held until
 * it is given back). An attempt read from such a message counts the listings too.
 */
export async function browseQueue(client: SQSClient, calls: BatchCalls, queue: QueueInfo, limit: number): Promise<BrowsedMessage[]> {
  const found: BrowsedMessage[] = [];
  const receipts: string[] = [];
  try {
    while (found.length < limit) {
      const command = new ReceiveMessageCommand({
        QueueUrl: queue.url,
        MaxNumberOfMessages: Math.min(10, limit - found.length),
        // A second of long polling asks every SQS server, not a sample; an empty answer ends the listing.
        WaitTimeSeconds: 1,
        VisibilityTimeout: LISTING_HIDE_SECONDS,
        MessageSystemAttributeNames: ["ApproximateReceiveCount", "MessageGroupId"],
        MessageAttributeNames: ["All"],
      });
      const messages = (await client.send(command)).Messages ?? [];
      if (messages.length === 0) break;
      for (const message of messages) {
        if (message.ReceiptHandle !== undefined) receipts.push(message.ReceiptHandle);
        const { body, headers, key } = decodeMessage(message, queue.fifo);
        found.push({ id: message.MessageId ?? "", body, headers, key });
      }
    }
  } finally {
    await Promise.allSettled(receipts.map((receipt) => calls.changeVisibility(queue.url, receipt, 0)));
  }
  return found;
}
