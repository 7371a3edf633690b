/**
 * .npy files on disk, read and written by rows at their byte offsets so that a job's inputs
 * and outputs never have to fit in memory. All I/O is positional (pread/pwrite through a
 * FileHandle), so concurrent reads or writes of different rows on one handle are safe, and
 * positions are plain numbers, exact up to 2^53 bytes.
 */
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { EdgepoolError } from "../errors.js";
import { NPY_PREFIX_BYTES, encodeNpyHeader, hasNpyMagic, npyDataBytes, npyHeaderLength, parseNpyHeader } from "../tensor/npy.js";
import type { NpyHeader } from "../tensor/npy.js";
import { checkTensor, elementCount, rowBytes, tensorBytes, viewOf } from "../tensor/tensor.js";
import type { DType, Tensor } from "../tensor/tensor.js";

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

/** Errors whose message already names the file, so they are not prefixed twice. */
const namesFile = new WeakSet<EdgepoolError>();

function errorNamingFile(code: "E_NPY" | "E_SHAPE" | "E_IO" | "E_STATE", message: string): EdgepoolError {
  const err = new EdgepoolError(code, message);
  namesFile.add(err);
  return err;
}

/** Wraps an fs error as E_IO naming the path; other EdgepoolErrors get the path prefixed. */
function fileError(file: string, err: unknown): EdgepoolError {
  if (err instanceof EdgepoolError) {
    if (namesFile.has(err)) return err;
    const wrapped = new EdgepoolError(err.code, `${file}: ${err.message}`, { cause: err });
    namesFile.add(wrapped);
    return wrapped;
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === "ENOENT"
      ? "no such file"
      : code === "EACCES" || code === "EPERM"
        ? "permission denied"
        : code === "EISDIR"
          ? "is a directory, not a file"
          : code === "ENOSPC"
            ? "no space left on the device"
            : err instanceof Error
              ? err.message
              : String(err);
  const wrapped = new EdgepoolError("E_IO", `${file}: ${reason}`, { cause: err });
  namesFile.add(wrapped);
  return wrapped;
}

/** Reads and parses the header of an open file; checks nothing about the data. */
async function readHeaderFrom(handle: FileHandle, file: string): Promise<NpyHeader> {
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
async function checkSize(handle: FileHandle, header: NpyHeader): Promise<number> {
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

function checkRowRange(what: string, start: number, end: number, rows: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > rows) {
    throw errorNamingFile("E_SHAPE", `${what}: rows [${start}, ${end}) are out of range; the file has ${rows} rows`);
  }
}

/** Reads row ranges of an .npy file straight into caller buffers, without loading the file. */
/**
 * Reads smaller than this are served from a read-ahead block of READ_AHEAD bytes: jobs cut
 * into tiny shards read their inputs in order, and one read syscall per shard was a large
 * part of the coordinator's cost per shard.
 */
const SMALL_READ = 64 * 1024;
const READ_AHEAD = 1024 * 1024;

interface Block {
  /** File offset of the block's first byte; it covers READ_AHEAD bytes from there (less at the end of the file). */
  at: number;
  bytes: Promise<Uint8Array>;
}

/** Read-ahead blocks kept, newest last. */
const MAX_BLOCKS = 4;

export class NpyRowReader {
  private handle: FileHandle | null;
  /** The latest read-ahead blocks, loaded or loading. */
  private blocks: Block[] = [];

  private constructor(
    handle: FileHandle,
    readonly path: string,
    readonly header: NpyHeader,
    /** Rows along dim 0. */
    readonly rows: number,
    /** Bytes of one row (all dims but the first). */
    readonly rowBytes: number,
  ) {
    this.handle = handle;
  }

  /** Opens the file and checks its header and size; the array must have at least one dim. */
  static async open(file: string): Promise<NpyRowReader> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(file, "r");
      const header = await readHeaderFrom(handle, file);
      await checkSize(handle, header);
      const rows = header.shape[0];
      if (rows === undefined) {
        throw new EdgepoolError("E_SHAPE", "the array is 0-d and has no rows; save it with shape (1,) or (N, ...)");
      }
      return new NpyRowReader(handle, file, header, rows, rowBytes(header.dtype, header.shape));
    } catch (err) {
      await handle?.close().catch(() => undefined);
      throw fileError(file, err);
    }
  }

  /** Reads rows [start, end) into `target`, which must be exactly (end - start) * rowBytes long. */
  async readRowsInto(start: number, end: number, target: Uint8Array): Promise<void> {
    const handle = this.handle;
    if (!handle) throw errorNamingFile("E_STATE", `${this.path}: read after close`);
    checkRowRange(`${this.path}: readRows`, start, end, this.rows);
    const want = (end - start) * this.rowBytes;
    if (target.byteLength !== want) {
      throw errorNamingFile("E_SHAPE", `${this.path}: rows [${start}, ${end}) take ${want} bytes but the target has ${target.byteLength}`);
    }
    const at = this.header.headerBytes + start * this.rowBytes;
    let got: number;
    try {
      got = want < SMALL_READ ? await this.readThroughBlock(handle, target, at) : await readFully(handle, target, at);
    } catch (err) {
      throw fileError(this.path, err);
    }
    if (got !== want) {
      throw errorNamingFile("E_IO", `${this.path}: the file ended after ${got} of ${want} bytes for rows [${start}, ${end}); was it truncated while open?`);
    }
  }

  /**
   * Copies `target.byteLength` bytes at file offset `at` from a read-ahead block, loading one
   * when none covers them. A block's range is known as soon as its load starts, so reads made
   * at once (a burst of dispatches) share the loads in flight instead of each starting its own.
   */
  private async readThroughBlock(handle: FileHandle, target: Uint8Array, at: number): Promise<number> {
    const end = at + target.byteLength;
    let entry = this.blocks.find((b) => at >= b.at && end <= b.at + READ_AHEAD);
    if (!entry) {
      const bytes = new Uint8Array(READ_AHEAD);
      const loading = readFully(handle, bytes, at).then((n) => bytes.subarray(0, n));
      entry = { at, bytes: loading };
      this.blocks.push(entry);
      if (this.blocks.length > MAX_BLOCKS) this.blocks.shift();
      // A failed load must not poison later reads.
      const failed = entry;
      loading.catch(() => {
        this.blocks = this.blocks.filter((b) => b !== failed);
      });
    }
    const bytes = await entry.bytes;
    const from = at - entry.at;
    const n = Math.max(0, Math.min(target.byteLength, bytes.byteLength - from));
    target.set(bytes.subarray(from, from + n));
    return n;
  }


  /** Reads rows [start, end) into a new tensor. */
  async readRows(start: number, end: number): Promise<Tensor> {
    checkRowRange(`${this.path}: readRows`, start, end, this.rows);
    const dims = [end - start, ...this.header.shape.slice(1)];
    const bytes = new Uint8Array((end - start) * this.rowBytes);
    await this.readRowsInto(start, end, bytes);
    return { dtype: this.header.dtype, dims, data: viewOf(this.header.dtype, bytes.buffer, 0, elementCount(dims)) };
  }

  /** Closes the file; safe to call more than once. */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    this.blocks = [];
    await handle?.close();
  }
}

/** Writes smaller than this wait a moment to be written together with their neighbours. */
const SMALL_WRITE = 64 * 1024;
/** A gathering of at least this many writes means the writer is busy... */
const GATHER_BUSY_WRITES = 4;
/** ...and the next one waits this long to gather more. */
const GATHER_MS = 2;

/**
 * Bytes written after which a flush to the disk starts in the background. Flushing only at
 * close left a whole job's outputs dirty at its end: a job moving 0.27 GB of outputs spent
 * 70-130 ms of its 0.5-0.75 s in that last flush, with the disk idle until then.
 */
const FLUSH_EVERY = 32 * 1024 * 1024;

interface PendingWrite {
  at: number;
  data: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Writes rows of an .npy file at their offsets, in any order. The file is preallocated at
 * create, so its size is final from the start: it is complete only when its owner says so.
 */
export class NpyRowWriter {
  private handle: FileHandle | null;
  /** Small writes gathered in this turn of the event loop; written together in the next. */
  private gathered: PendingWrite[] = [];
  /** How long the next gathering waits (0: the next turn of the event loop). */
  private gatherMs = 0;
  /** The gathered writes being written now, so close() can wait for them. */
  private writing: Promise<void> = Promise.resolve();
  /** Bytes written since the last background flush started. */
  private unflushed = 0;
  /** The background flush running now, if any. */
  private flushing: Promise<void> | null = null;
  /**
   * A background flush's failure, reported by close(): the kernel reports a failed writeback
   * to one fsync only, so close()'s own flush could not see it again.
   */
  private flushError: unknown = null;

  private constructor(
    handle: FileHandle,
    readonly path: string,
    readonly header: NpyHeader,
    readonly rows: number,
    readonly rowBytes: number,
  ) {
    this.handle = handle;
  }

  /**
   * Creates (or reopens) the file with its header and full size. Reopening a file that already
   * has this exact header keeps its rows, so a resumed job keeps the shards it wrote.
   */
  static async create(file: string, dtype: DType, shape: readonly number[]): Promise<NpyRowWriter> {
    const rows = shape[0];
    if (rows === undefined) {
      throw errorNamingFile("E_SHAPE", `${file}: cannot write a 0-d array by rows; use writeNpyFile`);
    }
    const headerBytes = encodeNpyHeader(dtype, shape);
    const header = parseNpyHeader(headerBytes);
    const size = header.headerBytes + npyDataBytes(header);
    let handle: FileHandle | undefined;
    try {
      // No O_TRUNC: an existing file is compared first, then truncated only if it differs.
      handle = await open(file, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
      const existing = new Uint8Array(headerBytes.byteLength);
      const got = await readFully(handle, existing, 0);
      const same = got === existing.byteLength && existing.every((b, i) => b === headerBytes[i]);
      if (!same) {
        if (got > 0) await handle.truncate(0);
        await writeFully(handle, headerBytes, 0);
      }
      await handle.truncate(size);
      return new NpyRowWriter(handle, file, header, rows, rowBytes(dtype, shape));
    } catch (err) {
      await handle?.close().catch(() => undefined);
      throw fileError(file, err);
    }
  }

  /** Writes whole rows starting at row `start`; `data` must be a multiple of rowBytes long. */
  async writeRows(start: number, data: Uint8Array): Promise<void> {
    const handle = this.handle;
    if (!handle) throw errorNamingFile("E_STATE", `${this.path}: write after close`);
    if (this.rowBytes === 0) {
      if (data.byteLength !== 0) throw errorNamingFile("E_SHAPE", `${this.path}: rows are empty here but ${data.byteLength} bytes were given`);
      return;
    }
    if (data.byteLength % this.rowBytes !== 0) {
      throw errorNamingFile(
        "E_SHAPE",
        `${this.path}: ${data.byteLength} bytes is not a whole number of ${this.rowBytes}-byte rows (dims [${this.header.shape.join(",")}])`,
      );
    }
    const end = start + data.byteLength / this.rowBytes;
    checkRowRange(`${this.path}: writeRows`, start, end, this.rows);
    const at = this.header.headerBytes + start * this.rowBytes;
    if (data.byteLength < SMALL_WRITE) {
      // Tiny shards each wrote a few bytes with a syscall of their own; gathered, rows that
      // land next to each other become one write. Each caller still waits for its own bytes.
      return new Promise<void>((resolve, reject) => {
        if (this.gathered.length === 0) {
          if (this.gatherMs > 0) setTimeout(() => this.writeGathered(handle), this.gatherMs);
          else setImmediate(() => this.writeGathered(handle));
        }
        this.gathered.push({ at, data, resolve, reject });
      });
    }
    try {
      await writeFully(handle, data, at);
    } catch (err) {
      throw fileError(this.path, err);
    }
    this.written(handle, data.byteLength);
  }

  /** Counts bytes written, and starts a background flush once FLUSH_EVERY have gathered. */
  private written(handle: FileHandle, bytes: number): void {
    this.unflushed += bytes;
    if (this.flushing || this.unflushed < FLUSH_EVERY || this.handle !== handle) return;
    this.unflushed = 0;
    this.flushing = handle
      .datasync()
      .catch((err: unknown) => void (this.flushError ??= err))
      .finally(() => void (this.flushing = null));
  }

  /** Writes the gathered small writes, adjacent ones merged, and settles each caller. */
  private writeGathered(handle: FileHandle): void {
    const batch = this.gathered.sort((a, b) => a.at - b.at);
    this.gathered = [];
    // Busy (many writes a turn): gather for a couple of ms next time, so rows from many
    // results merge into few writes. Quiet: write on the next turn, so a lone result waits
    // for nothing.
    this.gatherMs = batch.length >= GATHER_BUSY_WRITES ? GATHER_MS : 0;
    const runs: PendingWrite[][] = [];
    for (const w of batch) {
      const run = runs[runs.length - 1];
      const last = run?.[run.length - 1];
      if (run && last && last.at + last.data.byteLength === w.at) run.push(w);
      else runs.push([w]);
    }
    const done = Promise.all(
      runs.map(async (run) => {
        const bytes = run.length === 1 ? run[0]!.data : concatBytes(run.map((w) => w.data));
        try {
          await writeFully(handle, bytes, run[0]!.at);
          this.written(handle, bytes.byteLength);
          for (const w of run) w.resolve();
        } catch (err) {
          for (const w of run) w.reject(fileError(this.path, err));
        }
      }),
    ).then(() => undefined);
    this.writing = this.writing.then(() => done);
  }

  /** Flushes to stable storage and closes; safe to call more than once. */
  async close(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    this.handle = null;
    if (this.gathered.length > 0) this.writeGathered(handle);
    await this.writing;
    await this.flushing;
    try {
      if (this.flushError !== null) throw this.flushError;
      // A shard recorded as done must survive a power cut, not just a process crash.
      await handle.datasync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw fileError(this.path, err);
    }
    try {
      await handle.close();
    } catch (err) {
      throw fileError(this.path, err);
    }
  }
}

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

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
