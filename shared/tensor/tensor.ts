/**
 * Tensors as plain data: a dtype, dims, and a typed array over the element bytes. No `node:`
 * imports here: the browser worker reuses this module.
 */
import { EdgepoolError } from "../errors.js";

export const DTYPES = ["float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool"] as const;
export type DType = (typeof DTYPES)[number];

/** float16 is stored as raw IEEE half bits in a Uint16Array; bool as one byte per element. */
export type TypedArrayFor<D extends DType> = D extends "float32"
  ? Float32Array
  : D extends "float16"
    ? Uint16Array
    : D extends "float64"
      ? Float64Array
      : D extends "int8"
        ? Int8Array
        : D extends "uint8" | "bool"
          ? Uint8Array
          : D extends "int32"
            ? Int32Array
            : BigInt64Array;

export type TensorData =
  | Float32Array
  | Uint16Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int32Array
  | BigInt64Array;

export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

const BYTES: Record<DType, number> = {
  float32: 4,
  float16: 2,
  float64: 8,
  int8: 1,
  uint8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
};

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && (DTYPES as readonly string[]).includes(value);
}

/** Bytes per element of a dtype. */
export function bytesPerElement(dtype: DType): number {
  return BYTES[dtype];
}

/** Number of elements for the given dims (1 for a scalar). */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Bytes taken by one row (all dims but the first). */
export function rowBytes(dtype: DType, dims: readonly number[]): number {
  return elementCount(dims.slice(1)) * BYTES[dtype];
}

/**
 * A typed-array view of `length` elements over `buffer` at `byteOffset`, without copying.
 * The offset must be aligned to the element size.
 */
export function viewOf(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData {
  if (byteOffset % BYTES[dtype] !== 0) {
    throw new EdgepoolError("E_INTERNAL", `unaligned ${dtype} view at byte ${byteOffset}`);
  }
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, byteOffset, length);
    case "float16":
      return new Uint16Array(buffer, byteOffset, length);
    case "float64":
      return new Float64Array(buffer, byteOffset, length);
    case "int8":
      return new Int8Array(buffer, byteOffset, length);
    case "uint8":
    case "bool":
      return new Uint8Array(buffer, byteOffset, length);
    case "int32":
      return new Int32Array(buffer, byteOffset, length);
    case "int64":
      return new BigInt64Array(buffer, byteOffset, length);
  }
}

/** Allocates a zeroed tensor. */
export function zeros(dtype: DType, dims: number[]): Tensor {
  const n = elementCount(dims);
  return { dtype, dims: [...dims], data: viewOf(dtype, new ArrayBuffer(n * BYTES[dtype]), 0, n) };
}

/** The tensor's bytes as a Uint8Array view (no copy). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Checks that data length matches dims and dtype; throws E_SHAPE otherwise. */
export function checkTensor(t: Tensor, what = "tensor"): void {
  const expected = elementCount(t.dims);
  if (t.data.length !== expected) {
    throw new EdgepoolError(
      "E_SHAPE",
      `${what}: dims [${t.dims.join(",")}] need ${expected} elements but data has ${t.data.length}`,
    );
  }
}
