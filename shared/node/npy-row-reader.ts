/**
 * Reads row ranges of an .npy file straight into caller buffers, without loading the file.
 * All reads are positional, so concurrent reads of different rows on one reader are safe.
 */
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { EdgepoolError } from "../errors.js";
import type { NpyHeader } from "../tensor/npy.js";
import { elementCount, rowBytes, viewOf } from "../tensor/tensor.js";
import type { Tensor } from "../tensor/tensor.js";
import { errorNamingFile, fileError } from "./npy-file-errors.js";
import { checkRowRange, checkSize, readHeaderFrom } from "./npy-file-header.js";
import { readFully } from "./positional-io.js";

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

/** Reads row ranges of an .npy file straight into caller buffers, without loading the file. */
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
