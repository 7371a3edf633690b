/**
 * Positional reads and writes that finish: one pread/pwrite may move fewer bytes than asked,
 * so these loop until the buffer is done (or, for reads, the file ends). Narrow interfaces,
 * so tests can feed short reads and writes.
 */
import { EdgepoolError } from "../errors.js";

/** The positional read a FileHandle offers; narrow so tests can feed short reads. */
export interface PositionalReader {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** The positional write a FileHandle offers; narrow so tests can feed short writes. */
export interface PositionalWriter {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
}

/** One read(2) may return less than asked, and the kernel caps one call near 2 GiB. */
const MAX_IO_CHUNK = 1 << 30;

/**
 * Fills `target` from `position` on, looping over short reads. Returns the bytes read, which
 * is less than `target.byteLength` only when the file ends first.
 */
export async function readFully(source: PositionalReader, target: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(target.byteLength - done, MAX_IO_CHUNK);
    const { bytesRead } = await source.read(target, done, length, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Writes all of `data` at `position`, looping over short writes. */
export async function writeFully(sink: PositionalWriter, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const length = Math.min(data.byteLength - done, MAX_IO_CHUNK);
    const { bytesWritten } = await sink.write(data, done, length, position + done);
    if (bytesWritten <= 0) throw new EdgepoolError("E_IO", `write made no progress at byte ${position + done}`);
    done += bytesWritten;
  }
}
