/**
 * Row-level tensor operations (slice and concatenate along dim 0), IEEE half-precision
 * conversion, and numeric comparison. No `node:` imports: the browser worker reuses this module.
 */
import { EdgepoolError } from "../errors.js";
import { bytesPerElement, checkTensor, elementCount, tensorBytes, viewOf } from "./tensor.js";
import type { Tensor } from "./tensor.js";

function fmtDims(dims: readonly number[]): string {
  return `[${dims.join(",")}]`;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Rows [start, end) of `t` as a view over the same buffer (no copy). */
export function sliceRows(t: Tensor, start: number, end: number): Tensor {
  checkTensor(t, "sliceRows");
  const rows = t.dims[0];
  if (rows === undefined) {
    throw new EdgepoolError("E_SHAPE", "sliceRows: a 0-d tensor has no rows to slice; reshape it to [1] first");
  }
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > rows) {
    throw new EdgepoolError(
      "E_SHAPE",
      `sliceRows: rows [${start}, ${end}) are out of range for dims ${fmtDims(t.dims)}; need 0 <= start <= end <= ${rows}`,
    );
  }
  const perRow = elementCount(t.dims.slice(1));
  const byteOffset = t.data.byteOffset + start * perRow * bytesPerElement(t.dtype);
  return {
    dtype: t.dtype,
    dims: [end - start, ...t.dims.slice(1)],
    data: viewOf(t.dtype, t.data.buffer, byteOffset, (end - start) * perRow),
  };
}

/** Concatenates tensors along dim 0 into one new allocation; dtypes and trailing dims must agree. */
export function concatRows(tensors: readonly Tensor[]): Tensor {
  const first = tensors[0];
  if (first === undefined) {
    throw new EdgepoolError("E_SHAPE", "concatRows: needs at least one tensor (the result's dtype and row shape come from it)");
  }
  const trailing = first.dims.slice(1);
  let rows = 0;
  tensors.forEach((t, i) => {
    checkTensor(t, `concatRows: tensor ${i}`);
    if (t.dtype !== first.dtype) {
      throw new EdgepoolError("E_DTYPE", `concatRows: tensor ${i} is ${t.dtype} but tensor 0 is ${first.dtype}; convert before joining`);
    }
    const n = t.dims[0];
    if (n === undefined) {
      throw new EdgepoolError("E_SHAPE", `concatRows: tensor ${i} is 0-d and has no rows; reshape it to [1] first`);
    }
    if (!sameDims(t.dims.slice(1), trailing)) {
      throw new EdgepoolError(
        "E_SHAPE",
        `concatRows: tensor ${i} has dims ${fmtDims(t.dims)} but tensor 0 has ${fmtDims(first.dims)}; all dims but the first must match`,
      );
    }
    rows += n;
  });
  const dims = [rows, ...trailing];
  const count = elementCount(dims);
  const out = new Uint8Array(count * bytesPerElement(first.dtype));
  let at = 0;
  for (const t of tensors) {
    const bytes = tensorBytes(t);
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return { dtype: first.dtype, dims, data: viewOf(first.dtype, out.buffer, 0, count) };
}

/** Decodes IEEE 754 half-precision bits (0..0xffff) to a number. */
export function float16ToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Rounds a non-negative value to the nearest integer, ties to even. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Encodes a number as IEEE 754 half-precision bits, rounding to nearest even. Works from the
 * double directly: going through float32 first would round twice and can be off by one ulp.
 */
export function float32ToFloat16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65520 is halfway between the largest half (65504) and 2^16; the tie goes to the even
  // mantissa, which is the overflow to Infinity.
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // Subnormal: units of 2^-24. A result of 1024 is the smallest normal, whose bits are the same.
    return sign | roundHalfEven(a / 2 ** -24);
  }
  let e = Math.floor(Math.log2(a));
  // Math.log2 may be off by one near powers of two; fix it exactly.
  if (2 ** e > a) e -= 1;
  else if (2 ** (e + 1) <= a) e += 1;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e += 1;
  }
  return sign | ((e + 15) << 10) | m;
}

/** The tensor's values as float64 (float16 decoded, int64 via Number, bool as 0/1), for comparisons. */
export function toFloat64Array(t: Tensor): Float64Array {
  checkTensor(t, "toFloat64Array");
  const n = t.data.length;
  const out = new Float64Array(n);
  const data = t.data;
  if (data instanceof BigInt64Array) {
    for (let i = 0; i < n; i++) out[i] = Number(data[i]!);
  } else if (t.dtype === "float16") {
    for (let i = 0; i < n; i++) out[i] = float16ToFloat32(data[i]!);
  } else {
    out.set(data);
  }
  return out;
}

function checkSameDims(a: Tensor, b: Tensor, what: string): void {
  if (!sameDims(a.dims, b.dims)) {
    throw new EdgepoolError("E_SHAPE", `${what}: dims ${fmtDims(a.dims)} and ${fmtDims(b.dims)} differ`);
  }
}

/**
 * |x - y| where NaN matches NaN and an infinity matches the same infinity (distance 0), so a
 * comparison of two identical outputs is exact; any other NaN or infinity is infinitely far.
 */
function distance(x: number, y: number): number {
  if (x === y) return 0;
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) && Number.isNaN(y) ? 0 : Infinity;
  return Math.abs(x - y);
}

/** Largest element-wise |a - b|; the tensors must have the same dims (dtypes may differ). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  checkSameDims(a, b, "maxAbsDiff");
  const x = toFloat64Array(a);
  const y = toFloat64Array(b);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, distance(x[i]!, y[i]!));
  return max;
}

export interface AllCloseOptions {
  /** Relative tolerance against |b| (default 1e-5, as NumPy). */
  rtol?: number;
  /** Absolute tolerance (default 1e-8, as NumPy). */
  atol?: number;
}

export interface AllCloseResult {
  ok: boolean;
  maxAbs: number;
  /** Largest |a - b| / |b|; Infinity where b is 0 and a is not. */
  maxRel: number;
  /** Flat index of the element with the largest |a - b| relative to its tolerance; -1 if empty. */
  worstIndex: number;
}

/** NumPy-style allclose: every |a - b| <= atol + rtol * |b|, with figures for a useful report. */
export function allClose(a: Tensor, b: Tensor, options: AllCloseOptions = {}): AllCloseResult {
  checkSameDims(a, b, "allClose");
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-8;
  const x = toFloat64Array(a);
  const y = toFloat64Array(b);
  let maxAbs = 0;
  let maxRel = 0;
  let worstIndex = -1;
  let worstRatio = -1;
  let worstDiff = -1;
  let ok = true;
  for (let i = 0; i < x.length; i++) {
    const d = distance(x[i]!, y[i]!);
    const ref = Math.abs(y[i]!);
    const rel = d === 0 ? 0 : ref === 0 || !Number.isFinite(ref) ? Infinity : d / ref;
    const tol = atol + rtol * (Number.isFinite(ref) ? ref : 0);
    // How many tolerances away: > 1 fails. Ties go to the larger absolute difference.
    const ratio = d === 0 ? 0 : tol === 0 ? Infinity : d / tol;
    if (d > tol) ok = false;
    if (d > maxAbs) maxAbs = d;
    if (rel > maxRel) maxRel = rel;
    if (ratio > worstRatio || (ratio === worstRatio && d > worstDiff)) {
      worstRatio = ratio;
      worstDiff = d;
      worstIndex = i;
    }
  }
  return { ok, maxAbs, maxRel, worstIndex };
}
