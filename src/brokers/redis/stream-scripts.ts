import type { Redis } from "ioredis";
import { LUA_NOW } from "./delayed-set.js";

/**
 * The stream mode's Lua scripts. Settling acks the entry first (XACK) and does the rest only when
 * the entry was still pending: if another consumer claimed and settled it meanwhile, the second
 * settle does nothing, so a message never forks into two copies.
 */

/**
 * KEYS: stream. ARGV: group, consumer, min idle ms, cursor, count, forget-after ms.
 * XAUTOCLAIMs up to `count` entries idle at least `min idle` (a dead or closed consumer's) and
 * reads each one's delivery count (this claim included) from XPENDING. Also forgets group members
 * with nothing pending that have been idle past `forget-after` (a live one is recreated by its next
 * XREADGROUP), so dead workers' names do not pile up. Returns { next cursor, entries, counts }.
 */
const CLAIM = `local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local entries, counts = {}, {}
for _, e in ipairs(r[2]) do
  if e and e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    entries[#entries + 1] = e
    counts[#counts + 1] = p[1] and p[1][4] or 1
  end
end
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[6]) and info['name'] ~= ARGV[2] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
  end
end
return {r[1], entries, counts}`;

/**
 * KEYS: stream, delayed set. ARGV: group, id, delay ms, maxlen (0: none), delayed-member tag, then
 * the copy's fields (delay 0) or those fields framed as one string (delay > 0). A copy goes to the
 * end of the stream, or into the delayed set for the mover to XADD when due.
 */
const NACK = `if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local delay = tonumber(ARGV[3])
if delay > 0 then
  ${LUA_NOW}
  redis.call('ZADD', KEYS[2], now + delay, ARGV[5] .. ARGV[6])
elseif ARGV[4] ~= '0' then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 6))
else
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 6))
end
return 1`;

/** KEYS: stream, dead-letter stream. ARGV: group, id, then the dead letter's fields. */
const DEAD = `if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
return 1`;

type Arg = string | number | Buffer;
/** An entry as Redis returns it: id and flat fields. */
export type RawEntry = [id: Buffer, fields: Buffer[]];
export interface StreamCommands {
  wqueueStreamClaimBuffer(numKeys: 1, ...args: Arg[]): Promise<[cursor: Buffer, entries: RawEntry[], counts: number[]]>;
  wqueueStreamNack(numKeys: 2, ...args: Arg[]): Promise<number>;
  wqueueStreamDead(numKeys: 2, ...args: Arg[]): Promise<number>;
}
export type StreamClient = Redis & StreamCommands;

/** Registers the scripts on a client (EVALSHA, loaded on first use, reloaded after a restart); once per client. */
export function defineStreamScripts(client: Redis): StreamClient {
  client.defineCommand("wqueueStreamClaim", { lua: CLAIM });
  client.defineCommand("wqueueStreamNack", { lua: NACK });
  client.defineCommand("wqueueStreamDead", { lua: DEAD });
  return client as StreamClient;
}
