/**
 * Writes rows of an .npy file at their offsets, in any order, into a file preallocated at its
 * final size. Small writes are gathered and merged with their neighbours; a background flush
 * keeps dirty data from piling up until close, which flushes to stable storage.
 */
import { constants as fsConstants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { encodeNpyHeader, npyDataBytes, parseNpyHeader } from "../tensor/npy.js";
import type { NpyHeader } from "../tensor/npy.js";
import { rowBytes } from "../tensor/tensor.js";
import type { DType } from "../tensor/tensor.js";
import { errorNamingFile, fileError } from "./npy-file-errors.js";
import { checkRowRange } from "./npy-file-header.js";
import { readFully, writeFully } from "./positional-io.js";

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

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
