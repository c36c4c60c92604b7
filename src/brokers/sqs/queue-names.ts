import { ConfigError } from "../../errors.js";

/**
 * wqueue queue names -> SQS queue names. SQS allows only letters, digits, `-` and `_` (80 at most,
 * `.fifo` included), while wqueue's own names use dots: the default dead-letter queue is
 * `<queue>.dead`. So:
 *
 * - every `.` becomes `-`: `orders.dead` is the SQS queue `orders-dead` (so `a.b` and `a-b` are the
 *   same SQS queue: pick one style);
 * - a name ending in `.fifo` is a FIFO queue and keeps that suffix: `orders.fifo`;
 * - `<name>.fifo.dead`, the default dead-letter queue of a FIFO queue, is the FIFO queue
 *   `<name>-dead.fifo`: SQS's redrive needs a dead-letter queue of the same type;
 * - with `allFifo` (the URL's `fifo=true`) every queue is FIFO: `orders` is `orders.fifo`, its dead
 *   letters `orders-dead.fifo`;
 * - anything else outside [A-Za-z0-9_-] is a ConfigError naming the queue, never silently changed.
 *
 * Valid SQS names map to themselves, so queues made by other tools are used as they are.
 */
export interface SqsQueueName {
  /** The SQS queue name. */
  name: string;
  fifo: boolean;
}

const FIFO = ".fifo";
const FIFO_DEAD = ".fifo.dead";
const MAX_LENGTH = 80;

export function sqsQueueName(queue: string, allFifo = false): SqsQueueName {
  let base = queue;
  let fifo = allFifo;
  if (queue.endsWith(FIFO_DEAD)) {
    base = `${queue.slice(0, -FIFO_DEAD.length)}.dead`;
    fifo = true;
  } else if (queue.endsWith(FIFO)) {
    base = queue.slice(0, -FIFO.length);
    fifo = true;
  }
  const mapped = base.replaceAll(".", "-");
  if (mapped === "" || !/^[A-Za-z0-9_-]+$/.test(mapped)) {
    throw new ConfigError(
      `queue "${queue}" cannot be an SQS queue: SQS names hold only letters, digits, "-" and "_" ` +
        `(wqueue turns "." into "-" and keeps a ".fifo" suffix)`,
    );
  }
  const name = fifo ? `${mapped}${FIFO}` : mapped;
  if (name.length > MAX_LENGTH) {
    throw new ConfigError(`queue "${queue}" cannot be an SQS queue: "${name}" is longer than ${MAX_LENGTH} characters`);
  }
  return { name, fifo };
}
