/**
 * The rows of an input tensor that arrived inline with its job (POST /api/jobs with a frame
 * body), read the way a job reads an .npy input file. The job's shards are cut from memory,
 * so its first shard leaves before any file is opened; the same tensor is also written to the
 * job's folder, which is what a restarted coordinator reads.
 */
import { EdgepoolError } from "../../shared/errors.js";
import type { NpyHeader } from "../../shared/tensor/npy.js";
import { elementCount, rowBytes, tensorBytes, viewOf, type Tensor } from "../../shared/tensor/tensor.js";

/** What a job needs of an input: its dtype and shape, and rows by range. */
export interface RowReader {
  readonly header: Pick<NpyHeader, "dtype" | "shape">;
  readRowsInto(start: number, end: number, target: Uint8Array): Promise<void>;
  readRows(start: number, end: number): Promise<Tensor>;
  close(): Promise<void>;
}

export class MemoryRowReader implements RowReader {
  readonly header: Pick<NpyHeader, "dtype" | "shape">;
  private readonly bytes: Uint8Array;
  private readonly rowBytes: number;

  constructor(t: Tensor) {
    this.header = { dtype: t.dtype, shape: t.dims };
    this.bytes = tensorBytes(t);
    this.rowBytes = rowBytes(t.dtype, t.dims);
  }

  private range(start: number, end: number): Uint8Array {
    const rows = this.header.shape[0] ?? 0;
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= rows)) {
      throw new EdgepoolError("E_SHAPE", `rows [${start}, ${end}) are outside an inline input of ${rows} rows`);
    }
    return this.bytes.subarray(start * this.rowBytes, end * this.rowBytes);
  }

  async readRowsInto(start: number, end: number, target: Uint8Array): Promise<void> {
    const src = this.range(start, end);
    if (target.byteLength !== src.byteLength) {
      throw new EdgepoolError("E_SHAPE", `rows [${start}, ${end}) take ${src.byteLength} bytes but the target has ${target.byteLength}`);
    }
    target.set(src);
  }

  async readRows(start: number, end: number): Promise<Tensor> {
    const copy = this.range(start, end).slice();
    const dims = [end - start, ...this.header.shape.slice(1)];
    return { dtype: this.header.dtype, dims, data: viewOf(this.header.dtype, copy.buffer, 0, elementCount(dims)) };
  }

  async close(): Promise<void> {}
}
