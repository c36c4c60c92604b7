import { createRequire } from "node:module";

/**
 * A hook before kafkajs rejoins its group, where the Java client calls onPartitionsRevoked.
 *
 * kafkajs rejoins inside its runner the moment a heartbeat reports a rebalance (runner.js,
 * scheduleFetchManager: it emits REBALANCING, then awaits consumerGroup.joinAndSync()), with
 * nothing in between that can wait. A rejoin gives up every partition (the eager protocol), so a
 * record still running here would go to its new owner and run twice at once. This module makes
 * ConsumerGroup.prototype.joinAndSync first await the gate registered for its member id, and
 * heartbeat meanwhile: the coordinator keeps a member that heartbeats while the group prepares
 * its rebalance, lets it commit in its old generation, and waits for its JoinGroup up to the
 * rebalance timeout (the other members' joins wait as long).
 *
 * kafkajs 2.2.4 is its last release, so the one internal patched here is frozen. The patch is
 * installed once per process and changes nothing for a consumer without a gate, nor for a first
 * join or a rejoin after eviction (memberId is null then: the partitions are gone already).
 */

interface KafkaJsConsumerGroup {
  memberId: string | null;
  heartbeat(options: { interval: number }): Promise<void>;
  joinAndSync(): Promise<void>;
}

/** Between heartbeats while a gate holds the rejoin (the members' heartbeat interval). */
export const GATE_HEARTBEAT_MS = 1000;

const gates = new Map<string, () => Promise<void>>();
let installed = false;

/** Until `ungateRejoin`, every rejoin of member `memberId` first awaits `gate()`. */
export function gateRejoin(memberId: string, gate: () => Promise<void>): void {
  install();
  gates.set(memberId, gate);
}

export function ungateRejoin(memberId: string | undefined): void {
  if (memberId !== undefined) gates.delete(memberId);
}

function install(): void {
  if (installed) return;
  installed = true;
  // The same module instance as kafkajs's own require of it (one CommonJS cache).
  const ConsumerGroup = createRequire(import.meta.url)("kafkajs/src/consumer/consumerGroup.js") as {
    prototype: KafkaJsConsumerGroup;
  };
  const joinAndSync = ConsumerGroup.prototype.joinAndSync;
  ConsumerGroup.prototype.joinAndSync = async function (this: KafkaJsConsumerGroup) {
    const gate = this.memberId ? gates.get(this.memberId) : undefined;
    if (gate !== undefined) await heartbeatUntil(this, gate());
    return joinAndSync.call(this);
  };
}

/** Heartbeats until `done` settles; stops early once the coordinator no longer knows the member. */
async function heartbeatUntil(group: KafkaJsConsumerGroup, done: Promise<void>): Promise<void> {
  let finished = false;
  const ended = done.then(
    () => {
      finished = true;
    },
    () => {
      finished = true;
    },
  );
  while (!finished) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise((resolve) => (timer = setTimeout(resolve, GATE_HEARTBEAT_MS)))]);
    clearTimeout(timer);
    if (finished) return;
    try {
      await group.heartbeat({ interval: 0 });
    } catch (error) {
      const type = (error as { type?: string }).type;
      // Evicted (the rebalance timeout passed, or the session lapsed): holding on gains nothing.
      if (type === "UNKNOWN_MEMBER_ID" || type === "ILLEGAL_GENERATION" || type === "FENCED_INSTANCE_ID") return;
      // REBALANCE_IN_PROGRESS is the expected answer; a lost connection is retried at the next beat.
    }
  }
}
