/**
 * Delayed messages (nack({ delayMs }), publish({ delayMs })) go through delay queues kept by
 * RabbitMQ, so a delay survives a worker crash: `<queue>.delay.<ms>` is declared with
 * `x-message-ttl=<ms>`, `x-dead-letter-exchange=""` and `x-dead-letter-routing-key=<queue>`, has no
 * consumer, and the broker moves each message back to `<queue>` when its TTL runs out.
 *
 * One TTL per delay queue keeps expiry FIFO (every message of the queue waits equally long, so the
 * head always expires first). To keep the number of delay queues small, a delay is rounded UP to
 * the next bucket: a power of two or one and a half times one (1, 2, 3, 4, 6, 8, 12, 16, 24, ...
 * 512, 768, 1024, 1536, ... ms). A message therefore never comes back early, and at most 50% late
 * (1025 ms waits 1536 ms); a retry schedule from 1 s to 1 min uses about 12 delay queues per queue.
 * Delay queues are never deleted by wqueue (a queue with an expiry could drop waiting messages).
 */

/** The longest bucket: 1.5 * 2^31 ms (about 37 days) fits x-message-ttl's 32 bits. */
export const MAX_DELAY_MS = 3 * 2 ** 30;

/** The bucket a delay waits in: the smallest of 2^n and 1.5 * 2^n that is >= delayMs. */
export function delayBucket(delayMs: number): number {
  const wanted = Math.min(MAX_DELAY_MS, Math.max(1, Math.ceil(delayMs)));
  if (wanted <= 2) return wanted;
  const power = 2 ** Math.floor(Math.log2(wanted));
  if (wanted === power) return power;
  return wanted <= power * 1.5 ? power * 1.5 : power * 2;
}

export function delayQueueName(queue: string, bucketMs: number): string {
  return `${queue}.delay.${bucketMs}`;
}
