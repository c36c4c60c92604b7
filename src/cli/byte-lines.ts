/**
 * The lines of a byte stream as bytes, split on "\n" only and never decoded, so a payload that is
 * not UTF-8 passes unchanged (readline would turn it into U+FFFD). `number` counts from 1.
 */
export async function* byteLines(input: AsyncIterable<Buffer | string>): AsyncGenerator<{ number: number; bytes: Buffer }> {
  let pending: Buffer[] = [];
  let number = 0;
  for await (const chunk of input) {
    let data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    for (let newline = data.indexOf(0x0a); newline !== -1; newline = data.indexOf(0x0a)) {
      pending.push(data.subarray(0, newline));
      number += 1;
      yield { number, bytes: Buffer.concat(pending) };
      pending = [];
      data = data.subarray(newline + 1);
    }
    if (data.length > 0) pending.push(data);
  }
  if (pending.length > 0) yield { number: number + 1, bytes: Buffer.concat(pending) };
}
