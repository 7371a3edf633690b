/**
 * .npy files on disk, read and written by rows at their byte offsets so that a job's inputs
 * and outputs never have to fit in memory. All I/O is positional (pread/pwrite through a
 * FileHandle), so concurrent reads or writes of different rows on one handle are safe, and
 * positions are plain numbers, exact up to 2^53 bytes.
 *
 * This module is the entry point; the pieces live beside it:
 * - positional-io.ts: reads and writes that loop over short transfers
 * - npy-file-errors.ts: errors that name the file once
 * - npy-file-header.ts: header, size and row-range checks of an open file
 * - npy-row-reader.ts, npy-row-writer.ts: by rows, at their offsets
 * - npy-whole-file.ts: whole files read, written atomically, or created in one write
 */
export { readFully, writeFully } from "./positional-io.js";
export { readNpyFileHeader } from "./npy-file-header.js";
export { NpyRowReader } from "./npy-row-reader.js";
export { NpyRowWriter } from "./npy-row-writer.js";
export { createNpyFile, readNpyFile, writeNpyFile } from "./npy-whole-file.js";
