/**
 * RabbitMQ stream queues (`x-queue-type: stream`) are append-only logs: a consumer reads from an
 * offset (`x-stream-offset`, "next" by default, so messages already there would never be seen),
 * acks only pace the reading, nothing is ever requeued, and classic delay queues cannot
 * dead-letter into them (a retried message would vanish). None of wqueue's at-least-once
 * machinery holds there, and AMQP 0.9.1 has no server-side offset tracking to resume from. So
 * wqueue refuses a stream queue, to consume or to publish to, with one line: nothing is taken
 * from it and nothing is lost.
 *
 * RabbitMQ says it is one when a declaration without `x-queue-type: stream` meets it: 406
 * PRECONDITION_FAILED "inequivalent arg 'x-queue-type' for queue 'Q' in vhost 'V': received none
 * but current is the value 'stream' of type 'longstr'" (or "received 'classic' but current is
 * 'stream'").
 */
export function isStreamQueue(refusal: Error): boolean {
  return /inequivalent arg 'x-queue-type'.* current is (the value )?'stream'/.test(refusal.message);
}

export function streamRefusal(url: string, queue: string): string {
  return (
    `broker ${url}: queue ${queue} is a RabbitMQ stream (x-queue-type: stream), which wqueue cannot use: streams have ` +
    "no requeue and no dead-lettering into them; consume it with a stream client, or give wqueue a classic or quorum queue"
  );
}
