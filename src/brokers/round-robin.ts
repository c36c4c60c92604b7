/**
 * Takes up to `max` items from several sources (Kafka partitions, Kinesis shards), each source in
 * its own order: an equal share from each in turn, again while any still gives, starting at
 * source `turn` (callers rotate it per call) so no source is favoured. `taken` hears of each source
 * that gave something.
 */
export function takeRoundRobin<S, T>(
  sources: readonly S[],
  max: number,
  turn: number,
  take: (source: S, upTo: number, out: T[]) => void,
  taken?: (source: S) => void,
): T[] {
  const out: T[] = [];
  if (sources.length === 0) return out;
  for (let progress = true; progress && out.length < max; ) {
    progress = false;
    const share = Math.ceil((max - out.length) / sources.length);
    for (let i = 0; i < sources.length && out.length < max; i += 1) {
      const source = sources[(turn + i) % sources.length] as S;
      const before = out.length;
      take(source, Math.min(max, before + share), out);
      if (out.length > before) {
        progress = true;
        taken?.(source);
      }
    }
  }
  return out;
}
