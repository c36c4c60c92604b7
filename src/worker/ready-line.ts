/** Up to this many queues, the ready line names each one; above, it summarises per broker. */
export const READY_QUEUES_SHOWN = 5;

export interface ReadyQueue {
  queue: string;
  /** The broker's redacted URL. */
  broker: string;
  kind: string;
  delivery: string;
  /** The runner model, when the worker mixes them. */
  model?: string;
}

export interface ReadyBroker {
  broker: string;
  kind: string;
  delivery: string;
  queues: number;
  /** The first READY_QUEUES_SHOWN queue names, in subscription order. */
  first: string[];
}

/** One queue as the full list (debug, and the ready line of a small worker) shows it. */
export function describeQueue(queue: ReadyQueue): string {
  return `${queue.queue} @ ${queue.broker} (${queue.kind}, ${queue.delivery}${queue.model ? `, ${queue.model}` : ""})`;
}

/**
 * The queues part of the `ready` line, bounded whatever the number of queues (a worker over 1,000
 * queues once logged a line of ~100 KB): each queue when there are at most READY_QUEUES_SHOWN,
 * otherwise per broker its count and first names. The full list goes to the debug log and
 * `/api/stats`.
 */
export function summariseQueues(queues: readonly ReadyQueue[]): { text: string; brokers: ReadyBroker[] } {
  const brokers = new Map<string, ReadyBroker>();
  for (const queue of queues) {
    const key = `${queue.broker}\n${queue.kind}`;
    let entry = brokers.get(key);
    if (entry === undefined) {
      entry = { broker: queue.broker, kind: queue.kind, delivery: queue.delivery, queues: 0, first: [] };
      brokers.set(key, entry);
    }
    entry.queues += 1;
    if (entry.first.length < READY_QUEUES_SHOWN) entry.first.push(queue.queue);
  }
  const summary = [...brokers.values()];
  if (queues.length <= READY_QUEUES_SHOWN) return { text: queues.map(describeQueue).join("; "), brokers: summary };
  const text = summary
    .map(({ broker, kind, delivery, queues: count, first }) => {
      const more = count > first.length ? ` and ${count - first.length} more` : "";
      return `${count} @ ${broker} (${kind}, ${delivery}): ${first.join(", ")}${more}`;
    })
    .join("; ");
  return { text: `${queues.length} (${text})`, brokers: summary };
}
