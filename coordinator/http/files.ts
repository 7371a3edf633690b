/** Streams a file from disk as a response (model downloads, job outputs). */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { EdgepoolError } from "../../shared/errors.js";

/** Answers 200 with the file's bytes; a missing file is E_NOT_FOUND naming it (never its folder). */
export async function serveFile(res: ServerResponse, file: string, type: string): Promise<void> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    throw new EdgepoolError("E_NOT_FOUND", `${path.basename(file)} is not on this coordinator`);
  }
  res.writeHead(200, { "content-type": type, "content-length": size });
  try {
    await pipeline(createReadStream(file), res);
  } catch (err) {
    // A client that goes away mid-download is not a coordinator error.
    if (res.destroyed && !res.writableFinished && (err as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE") return;
    throw err;
  }
}
