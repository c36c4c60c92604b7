import type { Redis } from "ioredis";
import { bySlot } from "./cluster-keys.js";
import type { RedisClients } from "../shared/redis-clients.js";
import type { ReliableKeys } from "./reliable-item.js";
import type { ReliableClient } from "./reliable-scripts.js";

/** Consumers per heartbeat script call: bounds the arguments of one call. */
const BEAT_CHUNK = 500;

export interface HeartbeatMember {
  readonly id: string;
  readonly queue: string;
  readonly keys: ReliableKeys;
  /** Closing or closed: a lapse is then no news. */
  readonly closing: boolean;
}

/**
 * The heartbeats of all reliable consumers of one broker: every third of the TTL, one script call
 * per BEAT_CHUNK consumers refreshes each consumer's own key `<queue>:wqueue:consumer:<id>` and
 * its registration (the keys the reaper reads, unchanged), on the command connection. A worker over
 * 1,000 queues sends one call per tick, not 1,000 timers' worth (on a Cluster, one per slot). A consumer joins on its first
 * receive and leaves when it closes, after which settled() lets it wait for a beat in flight (so a
 * late beat cannot re-register it after its release).
 */
export class ReliableHeartbeats {
  readonly #members = new Set<HeartbeatMember>();
  /** Members beaten at least once: before that a missing key is no lapse (claims set it only when they take something). */
  readonly #beaten = new WeakSet<HeartbeatMember>();
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<unknown> | undefined;

  constructor(
    readonly commands: () => Redis,
    readonly clients: RedisClients,
    readonly ttlMs: number,
  ) {}

  join(member: HeartbeatMember): void {
    this.#members.add(member);
    this.#timer ??= setInterval(() => this.#beat(), Math.max(10, Math.floor(this.ttlMs / 3))).unref();
  }

  leave(member: HeartbeatMember): void {
    this.#members.delete(member);
    if (this.#members.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Resolves once the beat in flight, if any, has come back. */
  async settled(): Promise<void> {
    await this.#beating;
  }

  #beat(): void {
    if (this.#beating) return; // the last one has not come back yet
    const script = this.commands() as ReliableClient;
    const calls: Promise<void>[] = [];
    const groups: HeartbeatMember[][] = [];
    for (const members of bySlot([...this.#members], (member) => member.queue, script.isCluster)) {
      for (let start = 0; start < members.length; start += BEAT_CHUNK) groups.push(members.slice(start, start + BEAT_CHUNK));
    }
    for (const group of groups) {
      const keys: string[] = [];
      for (const { keys: own } of group) keys.push(own.heartbeat, own.consumers);
      calls.push(
        script.wqueueReliableHeartbeatMany(keys.length, ...keys, this.ttlMs, ...group.map((member) => member.id)).then(
          (lapsed) => {
            const missed = new Set(lapsed);
            for (const [index, member] of group.entries()) {
              const first = !this.#beaten.has(member);
              this.#beaten.add(member);
              if (missed.has(index + 1) && !first && !member.closing && this.#members.has(member)) {
                this.clients.log("warn", `redis ${this.clients.url}: consumer ${member.id} of ${member.queue} missed its heartbeat; its unsettled messages may have gone to other consumers`);
              }
            }
          },
          (error: Error) => this.clients.log("debug", `redis ${this.clients.url}: heartbeat of ${group.length} consumer(s) failed: ${error.message}`),
        ),
      );
    }
    this.#beating = Promise.all(calls).finally(() => {
      this.#beating = undefined;
    });
  }
}
