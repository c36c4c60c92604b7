import { setTimeout as sleep } from "node:timers/promises";
import { BrokerUnreachableError } from "../../errors.js";
import type { OutgoingMessage } from "../contract.js";
import { encode, type Outbound } from "./message-codec.js";
import { API_TIMEOUT_MS, type NatsConnection } from "./NatsConnection.js";
import type { StreamResolver } from "./StreamResolver.js";
import { isTransient } from "./transient.js";

/** How long publish() keeps trying through a lost connection before it fails. */
const PUBLISH_TIMEOUT_MS = 30_000;
/** JetStream publishes awaiting their ack at once: enough to fill the pipe, few enough to time out rarely. */
const WINDOW = 256;

/**
 * Publishes to a queue's subject with JetStream publish, each message acknowledged by the server
 * once stored (durably, as the stream's storage is), creating the stream first if none captures
 * the subject. Messages whose ack does not come (timeout, lost connection, restarted server) are
 * sent again until PUBLISH_TIMEOUT_MS; each carries a Nats-Msg-Id, so one that was stored although
 * its ack got lost is not stored twice (within the stream's dedup window, 2 minutes by default).
 * A stream deleted meanwhile (the server then answers "no responders") is created again.
 * An error that is not transient (./transient.ts: a stream limit, say) fails at once.
 */
export async function publishAll(
  connection: NatsConnection,
  resolver: StreamResolver,
  queue: string,
  messages: OutgoingMessage[],
): Promise<void> {
  const now = Date.now();
  let pending: Outbound[] = messages.map((message) => encode(message, now));
  const deadline = now + PUBLISH_TIMEOUT_MS;
  for (let attempt = 1; ; attempt += 1) {
    let failed: Outbound[] = [];
    let error: unknown;
    try {
      await connection.whenConnected(deadline - Date.now());
      const { subject } = await resolver.target(queue);
      const { js } = await connection.clients();
      for (let start = 0; start < pending.length; start += WINDOW) {
        const window = pending.slice(start, start + WINDOW);
        const results = await Promise.allSettled(
          window.map(({ body, headers, msgID }) => js.publish(subject, body, { headers, msgID, timeout: API_TIMEOUT_MS })),
        );
        results.forEach((result, index) => {
          if (result.status === "fulfilled") return;
          error ??= result.reason;
          failed.push(window[index] as Outbound);
        });
      }
    } catch (lookup) {
      // The stream could not be looked up or created (server restarting?): all of them again.
      error = lookup;
      failed = pending;
    }
    if (failed.length === 0) return;
    const why = connection.scrub((error as Error).message);
    if (!isTransient(error)) throw error;
    if (Date.now() >= deadline) {
      throw new BrokerUnreachableError(`NATS at ${connection.config.url} did not store ${failed.length} message(s) for ${queue} within ${PUBLISH_TIMEOUT_MS} ms: ${why}`);
    }
    // "jetstream is not enabled" is how the client reports that nothing answered: no stream (any more).
    if ((error as Error).name === "JetStreamNotEnabled") resolver.forget(queue);
    connection.log("debug", `nats ${connection.config.url}: ${failed.length} message(s) for ${queue} not acknowledged (${why}); sending again`);
    pending = failed;
    await sleep(Math.min(1000, 50 * 2 ** (attempt - 1)));
  }
}
