import type { DeadLetterReason, Delivery, Headers } from "./contract.js";

/**
 * How a dead letter is written on brokers without a native dead-letter store: the original body,
 * untouched, with the original headers plus these `x-wqueue-dead-*` ones. Replaying a dead letter
 * is publishing its body with `originalHeaders(headers)` to `x-wqueue-dead-queue`.
 */
export const DEAD_HEADER_PREFIX = "x-wqueue-dead-";

export function defaultDeadLetterQueue(queue: string): string {
  return `${queue}.dead`;
}

export function deadLetterHeaders(delivery: Delivery, why: DeadLetterReason, now = Date.now()): Headers {
  const headers: Headers = { ...delivery.headers };
  headers[`${DEAD_HEADER_PREFIX}reason`] = why.reason;
  headers[`${DEAD_HEADER_PREFIX}queue`] = delivery.queue;
  headers[`${DEAD_HEADER_PREFIX}attempts`] = String(delivery.attempt);
  headers[`${DEAD_HEADER_PREFIX}at`] = new Date(now).toISOString();
  headers[`${DEAD_HEADER_PREFIX}message-id`] = delivery.id;
  if (delivery.key !== undefined) headers[`${DEAD_HEADER_PREFIX}key`] = delivery.key;
  if (why.error) {
    headers[`${DEAD_HEADER_PREFIX}error-name`] = why.error.name;
    headers[`${DEAD_HEADER_PREFIX}error-message`] = why.error.message;
    if (why.error.stack) headers[`${DEAD_HEADER_PREFIX}error-stack`] = why.error.stack;
  }
  return headers;
}

/** The headers the message had before it was dead-lettered. */
export function originalHeaders(headers: Readonly<Headers>): Headers {
  const result: Headers = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(DEAD_HEADER_PREFIX)) result[name] = value;
  }
  return result;
}
