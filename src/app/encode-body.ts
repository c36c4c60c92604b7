/**
 * What `publish()` sends: bytes as they are, strings as UTF-8, anything else as JSON.
 * The rule is symmetric with the default "json" decoding of subscriptions, except that a string is
 * sent as its text (so `publish(q, '{"n":1}')` sends that JSON, not a JSON string of it).
 */
export function encodeBody(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return Buffer.from(body, "utf8");
  const json = JSON.stringify(body);
  if (json === undefined) throw new TypeError(`cannot publish ${typeof body}: it has no JSON form`);
  return Buffer.from(json, "utf8");
}
