import type { Redis } from "ioredis";
import { ConfigError } from "../../../errors.js";
import type { BrokerLog } from "../../contract.js";
import { RedisClients } from "../../shared/redis-clients.js";
import { parseBrokerUrl, redactUrl } from "../../url.js";
import type { LeaseInfo, LeaseStore, ShardCheckpoint } from "./LeaseStore.js";

/**
 * Leases and checkpoints in Redis (`redis://[:password@]host:port[/db]`, `rediss://` for TLS).
 * Keys, under `wqueue:kinesis:<app>:<stream>:`
 * - `lease:<shardId>`: the owner's worker id, with a PX ttl: Redis's clock expires the lease.
 * - `checkpoints`: hash, shardId -> JSON `{"sequence", "metadata"}`; never expires.
 * - `workers`: sorted set of worker ids scored by expiry, in ms of Redis's `TIME`.
 * Every conditional write is one Lua script, so the owner check and the write are one atomic step.
 * All keys of a stream are touched together by one script: a single Redis, not a Cluster.
 */

/** Redis's clock, in ms. Scripts that read TIME and then write are fine since Redis 5 (effects replication). */
const NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)";

/** KEYS: lease. ARGV: worker, ttl ms. Takes a free lease or extends our own; 1 when held now. */
const ACQUIRE = `local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/** KEYS: leases. ARGV: worker, ttl ms. Extends those still ours; returns their (1-based) positions. */
const RENEW = `local held = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    held[#held + 1] = i
  end
end
return held`;

/** KEYS: lease, checkpoints. ARGV: worker, shardId, checkpoint JSON. Writes only while we own the lease. */
const CHECKPOINT = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`;

/** KEYS: lease. ARGV: worker. Deletes the lease only if it is ours. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * KEYS: workers. ARGV: worker, ttl ms. Drops expired workers, marks this one alive until now + ttl,
 * keeps the set itself only as long as its last member lives, and returns the live ones.
 */
const HEARTBEAT = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now))
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

type Arg = string | number;
interface LeaseCommands {
  wqueueLeaseAcquire(numKeys: 1, ...args: Arg[]): Promise<number>;
  wqueueLeaseRenew(numKeys: number, ...args: Arg[]): Promise<number[]>;
  wqueueLeaseCheckpoint(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueLeaseRelease(numKeys: 1, ...args: Arg[]): Promise<number>;
  wqueueLeaseHeartbeat(numKeys: 1, ...args: Arg[]): Promise<string[]>;
}
type LeaseClient = Redis & LeaseCommands;

export class RedisLeaseStore implements LeaseStore {
  /** Redacted: the only form that goes into messages. */
  readonly url: string;
  readonly #clients: RedisClients;
  readonly #app: string;
  #client: Promise<LeaseClient> | undefined;
  #closed: Promise<void> | undefined;

  constructor(url: string, app: string, log: BrokerLog = () => {}) {
    this.url = redactUrl(url);
    const parsed = parseBrokerUrl(url);
    if (!/^\/?\d*$/.test(parsed.pathname)) {
      throw new ConfigError(`lease store ${this.url}: the path must be a database number, as in redis://host:6379/0`);
    }
    this.#clients = new RedisClients(url, this.url, log);
    this.#app = app;
  }

  /** Fails with BrokerUnreachableError (redacted URL) within a few seconds when Redis does not answer; a later call tries again. */
  async connect(): Promise<void> {
    await this.#connected();
  }

  async heartbeat(stream: string, worker: string, ttlMs: number): Promise<string[]> {
    const client = await this.#connected();
    const live = await client.wqueueLeaseHeartbeat(1, this.#key(stream, "workers"), worker, wholeMs(ttlMs));
    return live.sort();
  }

  async read(stream: string, shardIds: string[]): Promise<Map<string, LeaseInfo>> {
    const result = new Map<string, LeaseInfo>();
    if (shardIds.length === 0) return result;
    const client = await this.#connected();
    // MULTI: owners and checkpoints from one moment.
    const replies = await client
      .multi()
      .mget(shardIds.map((shard) => this.#leaseKey(stream, shard)))
      .hmget(this.#key(stream, "checkpoints"), ...shardIds)
      .exec();
    const [owners, checkpoints] = (replies ?? []).map(([error, value]) => {
      if (error) throw error;
      return value as (string | null)[];
    });
    shardIds.forEach((shard, i) => {
      const stored = checkpoints?.[i];
      result.set(shard, {
        owner: owners?.[i] ?? undefined,
        checkpoint: stored == null ? undefined : (JSON.parse(stored) as ShardCheckpoint),
      });
    });
    return result;
  }

  async acquire(stream: string, shardId: string, worker: string, ttlMs: number): Promise<boolean> {
    const client = await this.#connected();
    return (await client.wqueueLeaseAcquire(1, this.#leaseKey(stream, shardId), worker, wholeMs(ttlMs))) === 1;
  }

  async renew(stream: string, shardIds: string[], worker: string, ttlMs: number): Promise<string[]> {
    if (shardIds.length === 0) return [];
    const client = await this.#connected();
    const keys = shardIds.map((shard) => this.#leaseKey(stream, shard));
    const held = await client.wqueueLeaseRenew(keys.length, ...keys, worker, wholeMs(ttlMs));
    return held.map((position) => shardIds[position - 1]!);
  }

  async checkpoint(stream: string, shardId: string, worker: string, checkpoint: ShardCheckpoint): Promise<boolean> {
    const client = await this.#connected();
    const value = JSON.stringify({ sequence: checkpoint.sequence, metadata: checkpoint.metadata });
    const keys = [this.#leaseKey(stream, shardId), this.#key(stream, "checkpoints")];
    return (await client.wqueueLeaseCheckpoint(2, ...keys, worker, shardId, value)) === 1;
  }

  async release(stream: string, shardId: string, worker: string): Promise<void> {
    const client = await this.#connected();
    await client.wqueueLeaseRelease(1, this.#leaseKey(stream, shardId), worker);
  }

  async leave(stream: string, worker: string): Promise<void> {
    const client = await this.#connected();
    await client.zrem(this.#key(stream, "workers"), worker);
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      const client = await this.#client?.catch(() => undefined);
      if (client) await this.#clients.quit(client);
    })();
    return this.#closed;
  }

  /** Connects on first use; a failed attempt is forgotten, so the next call tries again. */
  #connected(): Promise<LeaseClient> {
    if (this.#closed) return Promise.reject(new Error(`lease store ${this.url} is closed`));
    if (this.#client === undefined) {
      // Auto-pipelining: the checkpoint writes of several shards, issued in one tick, go out as one write.
      const attempt = this.#clients.connect("kinesis-leases", { enableAutoPipelining: true }).then((client) => {
        for (const [name, lua] of Object.entries({ Acquire: ACQUIRE, Renew: RENEW, Checkpoint: CHECKPOINT, Release: RELEASE, Heartbeat: HEARTBEAT })) {
          client.defineCommand(`wqueueLease${name}`, { lua });
        }
        return client as LeaseClient;
      });
      this.#client = attempt;
      attempt.catch(() => {
        if (this.#client === attempt) this.#client = undefined;
      });
    }
    return this.#client;
  }

  #key(stream: string, name: string): string {
    return `wqueue:kinesis:${this.#app}:${stream}:${name}`;
  }

  #leaseKey(stream: string, shardId: string): string {
    return this.#key(stream, `lease:${shardId}`);
  }
}

/** PX and PEXPIRE take whole positive milliseconds. */
function wholeMs(ttlMs: number): number {
  const ms = Math.ceil(ttlMs);
  if (!(ms >= 1)) throw new RangeError(`lease ttl must be at least 1 ms, got ${ttlMs}`);
  return ms;
}
