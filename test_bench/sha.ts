import { createHash, randomBytes } from "node:crypto";

/** The bench's CPU-bound work: sha256 of a random string, chained `rounds` times; returns the hex. */
export function chainedSha256(rounds: number, seed = randomBytes(16).toString("hex")): string {
  let digest = seed;
  for (let i = 0; i < rounds; i++) digest = createHash("sha256").update(digest).digest("hex");
  return digest;
}

/** A bench message is `{ "n": N }` or a bare number N. */
export function roundsOf(body: unknown): number {
  const n = typeof body === "number" ? body : (body as { n?: unknown } | null)?.n;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
    throw new TypeError(`expected {"n": N} or a bare number N >= 0, got ${JSON.stringify(body)}`);
  }
  return n;
}
