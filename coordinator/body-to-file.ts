/** Streams an HTTP request body to a file while hashing it, with a size limit. */
import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { EdgepoolError } from "../shared/errors.js";

export interface ReceivedFile {
  file: string;
  bytes: number;
  /** Hex sha256 of the body, when asked for. */
  sha256: string | null;
}

/**
 * Writes the body to a fresh temp file in `dir` (never a name from the network), hashing as
 * it goes when asked. On any failure the partial file is removed.
 */
export async function bodyToFile(req: IncomingMessage, dir: string, limitBytes: number, opts: { hash: boolean }): Promise<ReceivedFile> {
  const file = path.join(dir, `.incoming-${randomUUID()}`);
  // Hashing costs about a second of CPU per 400 MB: done only where the hash is the address.
  const hash = opts.hash ? createHash("sha256") : null;
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.byteLength;
      if (bytes > limitBytes) {
        done(new EdgepoolError("E_BAD_REQUEST", `upload exceeds the limit of ${limitBytes} bytes`));
        return;
      }
      hash?.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(req, meter, createWriteStream(file));
  } catch (err) {
    await rm(file, { force: true });
    throw err instanceof EdgepoolError ? err : new EdgepoolError("E_IO", "upload interrupted; send it again", { cause: err });
  }
  return { file, bytes, sha256: hash?.digest("hex") ?? null };
}
