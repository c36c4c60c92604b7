import type { Channel, Message } from "amqplib";
import type { BrowsedMessage } from "../contract.js";
import type { AmqpSession } from "./AmqpSession.js";
import { decode } from "./message-codec.js";

const CLOSE_DEADLINE_MS = 2000;
/** Stop waiting for more once none came for this long (another consumer took the rest). */
const QUIET_MS = 1000;
/** AMQP's largest prefetch: at most this many messages are shown. */
const MAX_BROWSE = 65_535;

/**
 * Up to `limit` messages at the head of `queue`, oldest first, left in the queue. AMQP has no peek,
 * so a channel of its own takes them (basic.consume, prefetch = what it wants, never acked), then
 * closes, and RabbitMQ puts every one back in its place. Looking leaves traces: while they are held
 * (about one round trip) no consumer gets them, and they come back marked `redelivered`, so a
 * wqueue consumer of a classic queue later counts each one attempt more and moves it to the tail
 * (./message-codec.ts), as for a message a dead consumer held; on a quorum queue
 * `x-delivery-count` grows by one. Meant for dead-letter queues, which nothing consumes.
 *
 * A queue that does not exist is empty (nothing is created). A stream queue is refused by the
 * declaration (./stream-queues.ts) before anything is read.
 */
export async function browseQueue(session: AmqpSession, queue: string, limit: number): Promise<BrowsedMessage[]> {
  const channel = await session.model.createChannel();
  channel.on("error", () => {}); // the failing call reports it
  try {
    let ready: number;
    try {
      ready = (await channel.checkQueue(queue)).messageCount; // passive: creates nothing
    } catch (error) {
      if ((error as { code?: number }).code === 404) return [];
      throw error;
    }
    await session.declarer.deadLetterQueue(queue); // it exists, so this creates nothing; refuses a stream
    const want = Math.min(Math.floor(limit), ready, MAX_BROWSE);
    return want > 0 ? await take(channel, queue, want) : [];
  } finally {
    await closeWithin(channel); // gives every message back
  }
}

/** Consumes up to `want` messages without acking them; resolves once it has them or none comes for QUIET_MS. */
async function take(channel: Channel, queue: string, want: number): Promise<BrowsedMessage[]> {
  await channel.prefetch(want);
  const browsed: BrowsedMessage[] = [];
  let finish = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let quiet = setTimeout(finish, QUIET_MS);
  const onMessage = (message: Message | null) => {
    if (message === null || browsed.length >= want) return finish();
    const { headers, key, messageId } = decode(message);
    browsed.push({ id: messageId ?? String(browsed.length), body: message.content, headers: { ...headers }, key });
    clearTimeout(quiet);
    if (browsed.length >= want) finish();
    else quiet = setTimeout(finish, QUIET_MS);
  };
  channel.once("close", () => finish());
  try {
    await channel.consume(queue, onMessage, { noAck: false });
    await finished;
  } finally {
    clearTimeout(quiet);
  }
  return browsed;
}

async function closeWithin(channel: Channel): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, CLOSE_DEADLINE_MS);
  });
  await Promise.race([channel.close().catch(() => {}), deadline]);
  clearTimeout(timer);
}
