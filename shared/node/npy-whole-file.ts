/**
 * Whole .npy files in one go: read into one tensor, written atomically through a temporary
 * name, or created in one vectored write where nothing reads the file until it is recorded.
 */
import { randomBytes } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { EdgepoolError } from "../errors.js";
import { encodeNpyHeader, npyDataBytes } from "../tensor/npy.js";
import { checkTensor, elementCount, tensorBytes, viewOf } from "../tensor/tensor.js";
import type { Tensor } from "../tensor/tensor.js";
import { fileError } from "./npy-file-errors.js";
import { checkSize, readHeaderFrom } from "./npy-file-header.js";
import { readFully, writeFully } from "./positional-io.js";

/** Reads a whole .npy file into one tensor; the data is read straight into its final buffer. */
export async function readNpyFile(file: string): Promise<Tensor> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, "r");
    const header = await readHeaderFrom(handle, file);
    await checkSize(handle, header);
    const bytes = new Uint8Array(npyDataBytes(header));
    const got = await readFully(handle, bytes, header.headerBytes);
    if (got !== bytes.byteLength) {
      throw new EdgepoolError("E_IO", `the file ended after ${got} of ${bytes.byteLength} data bytes; was it truncated while read?`);
    }
    return { dtype: header.dtype, dims: header.shape, data: viewOf(header.dtype, bytes.buffer, 0, elementCount(header.shape)) };
  } catch (err) {
    throw fileError(file, err);
  } finally {
    await handle?.close();
  }
}

/**
 * Writes a tensor as an .npy file. The bytes go to a temporary name in the same directory
 * and are renamed into place, so a crash never leaves a partial file under the real name.
 */
export async function writeNpyFile(file: string, t: Tensor): Promise<void> {
  checkTensor(t, file);
  const header = encodeNpyHeader(t.dtype, t.dims);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, "wx", 0o644);
    await writeFully(handle, header, 0);
    await writeFully(handle, tensorBytes(t), header.byteLength);
    await handle.datasync();
    await handle.close();
    handle = undefined;
    await rename(tmp, file);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw fileError(file, err);
  }
}

/**
 * Writes a tensor as a new .npy file in one write, without a temporary name or a flush: for
 * a file in a folder that nothing reads until its owner records it (a job's inline inputs,
 * whose job row is written after). Fails if the file exists.
 */
export async function createNpyFile(file: string, t: Tensor): Promise<void> {
  checkTensor(t, file);
  const header = encodeNpyHeader(t.dtype, t.dims);
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, "wx", 0o644);
    const data = tensorBytes(t);
    const { bytesWritten } = await handle.writev([header, data], 0);
    if (bytesWritten !== header.byteLength + data.byteLength) {
      // A short vectored write (rare): positional writes are idempotent, so write both again in full.
      await writeFully(handle, header, 0);
      await writeFully(handle, data, header.byteLength);
    }
    await handle.close();
    handle = undefined;
  } catch (err) {
    await handle?.close().catch(() => undefined);
    throw fileError(file, err);
  }
}
