/** Streams an HTTP request body to a file while hashing it, with a size limit. */
import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { EdgepoolError } from "../../shared/errors.js";
import { checkContentLength, tooLarge } from "../http/http-util.js";

export interface ReceivedFile {
  file: string;
  bytes: number;
  /** Hex sha256 of the body, when asked for. */
  sha256: string | null;
}

/**
 * Writes the body to a fresh temp file in `dir` (never a name from the network), hashing as
 * it goes when asked. A body over `limitBytes` is refused as E_TOO_LARGE: at once when its
 * Content-Length says so, else as soon as the bytes received pass the limit; nothing more is
 * read, and the request is left open so the 413 can be answered. On any failure the partial
 * file is removed.
 */
export async function bodyToFile(req: IncomingMessage, dir: string, limitBytes: number, opts: { hash: boolean; what: string; flag: string }): Promise<ReceivedFile> {
  checkContentLength(req, limitBytes, opts.what, opts.flag);
  const file = path.join(dir, `.incoming-${randomUUID()}`);
  // Hashing costs about a second of CPU per 400 MB: done only where the hash is the address.
  const hash = opts.hash ? createHash("sha256") : null;
  let bytes = 0;
  // A generator, not a Transform piped from req: pipeline would destroy req on the error,
  // and with it the socket the 413 must go out on.
  async function* metered(): AsyncGenerator<Buffer> {
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      const b = chunk as Buffer;
      bytes += b.byteLength;
      if (bytes > limitBytes) throw tooLarge(opts.what, limitBytes, opts.flag);
      hash?.update(b);
      yield b;
    }
  }
  try {
    await pipeline(metered, createWriteStream(file));
  } catch (err) {
    await rm(file, { force: true });
    throw err instanceof EdgepoolError ? err : new EdgepoolError("E_IO", "upload interrupted; send it again", { cause: err });
  }
  return { file, bytes, sha256: hash?.digest("hex") ?? null };
}
