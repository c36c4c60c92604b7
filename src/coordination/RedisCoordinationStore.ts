import type { Redis } from "ioredis";
import { RedisClients } from "../brokers/shared/redis-clients.js";
import type { BrokerLog } from "../brokers/contract.js";
import { parseBrokerHosts, redactUrl } from "../brokers/url.js";
import type { Admission, CoordinationStore, RateLimit } from "./CoordinationStore.js";
import { gcraParams } from "./gcra.js";

// Each operation is one Lua script, so it is atomic across every worker, and reads the clock of
// Redis (TIME), so hosts whose clocks differ still agree. Keys of a queue share a hash tag.
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

/** KEYS: pause, tat. ARGV: want, interval (0: no limit), burst. Returns {granted, waitMs}. gcra.ts in Lua. */
const ADMIT = `${NOW}
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > now then return {0, paused - now} end
local want = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
if interval == 0 then return {want, 0} end
local burst = tonumber(ARGV[3])
local base = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
local granted = math.min(want, math.floor((now + burst * interval - base) / interval + 1e-9))
if granted <= 0 then return {0, math.max(1, math.ceil(base + interval - burst * interval - now))} end
local tat = base + granted * interval
redis.call('SET', KEYS[2], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
return {granted, 0}`;

/** KEYS: tat. ARGV: count, interval. Moves the TAT back by the unused permits. */
const REFUND = `${NOW}
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat <= now then return 0 end
tat = tat - tonumber(ARGV[1]) * tonumber(ARGV[2])
if tat <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
return 0`;

/** KEYS: pause. ARGV: ms. Keeps the later of the two ends. */
const PAUSE = `${NOW}
local untilMs = now + tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') >= untilMs then return 0 end
redis.call('SET', KEYS[1], untilMs, 'PX', tonumber(ARGV[1]))
return 1`;

/** KEYS: lease. ARGV: ttlMs. 1 for the one caller that took it. */
const CLAIM = "return redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) and 1 or 0";

type Scripts = {
  wqueueFlowAdmit(pause: string, tat: string, want: number, interval: number, burst: number): Promise<[number, number]>;
  wqueueFlowRefund(tat: string, count: number, interval: number): Promise<number>;
  wqueueFlowPause(pause: string, ms: number): Promise<number>;
  wqueueFlowClaim(lease: string, ttlMs: number): Promise<number>;
};

/** The coordination store in Redis (`redis://`, `rediss://`): see CoordinationStore. */
export class RedisCoordinationStore implements CoordinationStore {
  readonly url: string;
  readonly #clients: RedisClients;
  #client: Promise<Redis & Scripts> | undefined;

  constructor(url: string, log: BrokerLog = () => {}) {
    // The broker's own query (?mode=...) means nothing here, and ioredis would read some of it.
    // A Cluster URL (?cluster=true, several hosts) opens a Cluster: the keys of a queue share a hash tag.
    const { url: plain, hosts: nodes } = parseBrokerHosts(url, 6379);
    const cluster = plain.searchParams.get("cluster") === "true" || nodes.length > 1;
    plain.search = "";
    this.url = redactUrl(url.replace(/\?.*$/, ""));
    this.#clients = new RedisClients(plain.href, this.url, log, cluster ? nodes : undefined);
  }

  async admit(queue: string, want: number, limit: RateLimit | undefined): Promise<Admission> {
    const { interval, burst } = limit === undefined ? { interval: 0, burst: 0 } : gcraParams(limit);
    const [granted, waitMs] = await (await this.#redis()).wqueueFlowAdmit(pauseKey(queue), rateKey(queue), want, interval, burst);
    return { granted, waitMs };
  }

  async refund(queue: string, count: number, limit: RateLimit): Promise<void> {
    if (count <= 0) return;
    await (await this.#redis()).wqueueFlowRefund(rateKey(queue), count, gcraParams(limit).interval);
  }

  async pause(queue: string, ms: number): Promise<void> {
    if (ms < 1) return;
    await (await this.#redis()).wqueueFlowPause(pauseKey(queue), Math.ceil(ms));
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    return (await (await this.#redis()).wqueueFlowClaim(`wqueue:flow:lease:${key}`, Math.max(1, Math.ceil(ttlMs)))) === 1;
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) await this.#clients.quit(await client.catch(() => undefined as never)).catch(() => {});
  }

  /**
   * Connects on first use; a failed connect is tried again on the next call. Auto-pipelined: the
   * pause checks of many queues woken in one turn go out as one write, not one per queue.
   */
  #redis(): Promise<Redis & Scripts> {
    this.#client ??= this.#clients.connect("coordination", { enableAutoPipelining: true }).then((client) => {
      client.defineCommand("wqueueFlowAdmit", { numberOfKeys: 2, lua: ADMIT });
      client.defineCommand("wqueueFlowRefund", { numberOfKeys: 1, lua: REFUND });
      client.defineCommand("wqueueFlowPause", { numberOfKeys: 1, lua: PAUSE });
      client.defineCommand("wqueueFlowClaim", { numberOfKeys: 1, lua: CLAIM });
      return client as Redis & Scripts;
    });
    const client = this.#client;
    client.catch(() => {
      if (this.#client === client) this.#client = undefined;
    });
    return client;
  }
}

const pauseKey = (queue: string) => `wqueue:flow:{${queue}}:paused-until`;
const rateKey = (queue: string) => `wqueue:flow:{${queue}}:tat`;
