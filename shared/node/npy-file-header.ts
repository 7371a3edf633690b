/**
 * The checks an open .npy file must pass before any row is read or written: its header
 * parses, its size matches the header exactly (so a truncated file fails at open, not
 * mid-job), and row ranges lie inside it.
 */
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { EdgepoolError } from "../errors.js";
import { NPY_PREFIX_BYTES, hasNpyMagic, npyDataBytes, npyHeaderLength, parseNpyHeader } from "../tensor/npy.js";
import type { NpyHeader } from "../tensor/npy.js";
import { errorNamingFile, fileError } from "./npy-file-errors.js";
import { readFully } from "./positional-io.js";

/** Reads and parses the header of an open file; checks nothing about the data. */
export async function readHeaderFrom(handle: FileHandle, file: string): Promise<NpyHeader> {
  const prefix = new Uint8Array(NPY_PREFIX_BYTES);
  const got = await readFully(handle, prefix, 0);
  if (!hasNpyMagic(prefix.subarray(0, got))) {
    throw errorNamingFile("E_NPY", `${file} is not a NumPy .npy file (magic bytes missing); save arrays with np.save(path, x)`);
  }
  const headerBytes = npyHeaderLength(prefix.subarray(0, got));
  const header = new Uint8Array(headerBytes);
  const headerGot = await readFully(handle, header, 0);
  if (headerGot < headerBytes) {
    throw new EdgepoolError("E_NPY", `truncated .npy file: the header needs ${headerBytes} bytes but the file has ${headerGot}`);
  }
  return parseNpyHeader(header);
}

/** Checks the file size against the header, so a truncated file fails at open, not mid-job. */
export async function checkSize(handle: FileHandle, header: NpyHeader): Promise<number> {
  const want = header.headerBytes + npyDataBytes(header);
  const { size } = await handle.stat();
  if (size !== want) {
    throw new EdgepoolError(
      "E_NPY",
      size < want
        ? `truncated .npy file: ${header.dtype} (${header.shape.join(", ")}) needs ${want} bytes but the file has ${size}`
        : `.npy file has ${size - want} bytes after its data (${header.dtype} (${header.shape.join(", ")})); it is corrupt`,
    );
  }
  return size;
}

/** Reads only the header of an .npy file (a few hundred bytes, whatever the file's size). */
export async function readNpyFileHeader(file: string): Promise<NpyHeader> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, "r");
    return await readHeaderFrom(handle, file);
  } catch (err) {
    throw fileError(file, err);
  } finally {
    await handle?.close();
  }
}

/** Throws E_SHAPE unless [start, end) is a range of whole rows inside a file of `rows` rows. */
export function checkRowRange(what: string, start: number, end: number, rows: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > rows) {
    throw errorNamingFile("E_SHAPE", `${what}: rows [${start}, ${end}) are out of range; the file has ${rows} rows`);
  }
}
