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

/**
 * The MIME type of what encodeBody made of `body`: `application/json` for a value it serialised.
 * Bytes and strings are sent as given and wqueue cannot tell what they hold (a string may be JSON
 * text already), so they get none rather than a guess.
 */
export function contentTypeOf(body: unknown): string | undefined {
  return body instanceof Uint8Array || typeof body === "string" ? undefined : "application/json";
}
