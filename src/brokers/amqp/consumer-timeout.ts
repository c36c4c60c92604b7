/**
 * RabbitMQ's `consumer_timeout` (default 30 min since 3.8.15): a channel that holds a delivery
 * unacknowledged for longer is closed by the server with 406 PRECONDITION_FAILED ("delivery
 * acknowledgement on channel N timed out. Timeout value used: T ms..."), and every message unacked
 * on it goes back to the queue. AMQP has no way to extend it from the client: a handler longer
 * than the timeout is run again (attempt + 1) while its first run may still go on. The cure is on
 * the server: raise `consumer_timeout` in rabbitmq.conf (or per queue, RabbitMQ 3.12+).
 */

/** The timeout in ms if `error` is RabbitMQ closing a channel for consumer_timeout, else undefined. */
export function consumerTimeoutOf(error: Error): number | undefined {
  const match = /delivery acknowledgement on channel \d+ timed out\. Timeout value used: (\d+) ms/.exec(error.message);
  return match ? Number(match[1]) : undefined;
}

/** The one line logged when it happens. */
export function consumerTimeoutLine(queue: string, timeoutMs: number): string {
  return (
    `RabbitMQ closed the channel of ${queue} because a message stayed unacknowledged longer than ` +
    `its consumer_timeout (${timeoutMs} ms): that channel's messages go back to the queue and run again, possibly ` +
    "while a first run still goes on; raise consumer_timeout in rabbitmq.conf above your longest handler"
  );
}
