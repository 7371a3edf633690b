/**
 * Reads a fetch Response body into one buffer without ever holding more than `maxBytes`:
 * a declared length over the limit is refused before reading, and an undeclared one is cut
 * off as it streams. Runs in Node and in browsers (the worker daemon and the join page).
 */
import { EdgepoolError } from "./errors.js";

/** `what` names the body in the error, e.g. "model <sha256>"; `who` the side that refuses it. */
export async function readBodyCapped(res: Response, maxBytes: number, what: string, who: string): Promise<Uint8Array> {
  const tooLarge = (size: string) => new EdgepoolError("E_MODEL_LOAD", `${what} is ${size}, more than the ${maxBytes} bytes ${who} accepts`);
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(`${declared} bytes`);
  }
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge("larger");
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
