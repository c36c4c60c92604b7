/**
 * Where the workers of one Kinesis application keep their shard leases and checkpoints (what the
 * KCL keeps in DynamoDB). One store instance serves one application (`app=` of the kinesis:// URL);
 * every key is scoped by (app, stream, shard), so several apps share one Redis without meeting.
 *
 * Contract, for every implementation (Redis, SQLite):
 * - A lease has at most one owner at a time. It is held for `ttlMs` from the last acquire or renew,
 *   measured on the store's clock (Redis's, or the one machine's for SQLite), so workers on hosts
 *   with skewed clocks still agree. A lease not renewed in time is free for anyone to acquire.
 * - Every write that changes a checkpoint is conditional on the writer still owning the lease, in
 *   one atomic step: a worker whose lease was taken over can never move the new owner's checkpoint.
 * - A checkpoint outlives leases and workers: it is only ever replaced, never dropped by expiry.
 * - Workers announce themselves with `heartbeat`; `liveWorkers` counts those seen within their ttl,
 *   so each can aim at a fair share of the shards.
 */
export interface ShardCheckpoint {
  /**
   * The sequence number of the last record finished with nothing unfinished before it (reading
   * resumes AFTER it), or SHARD_END once every record of a closed shard is finished.
   */
  sequence: string;
  /** Opaque text stored beside it (delivery counts of unfinished records), or null. */
  metadata: string | null;
}

/** The checkpoint of a shard that was read to its end (after a reshard): its children may start. */
export const SHARD_END = "SHARD_END";

export interface LeaseInfo {
  /** The worker holding the lease, or undefined when nobody holds it (never held, released, expired). */
  owner: string | undefined;
  checkpoint: ShardCheckpoint | undefined;
}

export interface LeaseStore {
  /** Connects (idempotent); rejects with a clear error naming the store URL (password redacted). */
  connect(): Promise<void>;
  /** Marks `worker` alive for `ttlMs` more, and returns the ids of every live worker of `stream`, itself included. */
  heartbeat(stream: string, worker: string, ttlMs: number): Promise<string[]>;
  /** The lease holder and checkpoint of each of these shards (entries for shards never seen: owner and checkpoint undefined). */
  read(stream: string, shardIds: string[]): Promise<Map<string, LeaseInfo>>;
  /** Takes the lease when it is free or already ours; true when `worker` holds it for `ttlMs` now. */
  acquire(stream: string, shardId: string, worker: string, ttlMs: number): Promise<boolean>;
  /** Extends the leases `worker` still holds by `ttlMs`; returns the shard ids it still holds (lost ones left out). */
  renew(stream: string, shardIds: string[], worker: string, ttlMs: number): Promise<string[]>;
  /** Writes the checkpoint if `worker` holds the lease; false (nothing written) when it does not. */
  checkpoint(stream: string, shardId: string, worker: string, checkpoint: ShardCheckpoint): Promise<boolean>;
  /** Gives the lease up if `worker` holds it (the checkpoint stays); a no-op otherwise. */
  release(stream: string, shardId: string, worker: string): Promise<void>;
  /** Removes `worker` from the live workers at once (a clean shutdown), so the others rebalance sooner. */
  leave(stream: string, worker: string): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
}
