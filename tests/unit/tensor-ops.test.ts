import { describe, expect, it } from "vitest";
import { codeOf } from "../harness/errors.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import {
  allClose,
  concatRows,
  float16ToFloat32,
  float32ToFloat16,
  maxAbsDiff,
  sliceRows,
  toFloat64Array,
} from "../../shared/tensor/tensor-ops.js";


function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return "no error";
}

const f32 = (dims: number[], values: number[]): Tensor => ({ dtype: "float32", dims, data: Float32Array.from(values) });

describe("float32ToFloat16", () => {
  it("encodes exact values", () => {
    expect(float32ToFloat16(0)).toBe(0x0000);
    expect(float32ToFloat16(-0)).toBe(0x8000);
    expect(float32ToFloat16(1)).toBe(0x3c00);
    expect(float32ToFloat16(-2)).toBe(0xc000);
    expect(float32ToFloat16(0.5)).toBe(0x3800);
    expect(float32ToFloat16(65504)).toBe(0x7bff);
    expect(float32ToFloat16(-65504)).toBe(0xfbff);
    expect(float32ToFloat16(2 ** -14)).toBe(0x0400); // smallest normal, 6.103515625e-5
    expect(float32ToFloat16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
  });

  it("rounds near the subnormal edge", () => {
    // 6.1e-5 is just under 2^-14: 1023.4 units of 2^-24, so the largest subnormal.
    expect(float32ToFloat16(6.1e-5)).toBe(0x03ff);
    // 1023.5 units ties to even, which is 1024: the smallest normal.
    expect(float32ToFloat16(1023.5 * 2 ** -24)).toBe(0x0400);
    expect(float32ToFloat16(2 ** -25)).toBe(0x0000); // half of the smallest subnormal ties to 0
    expect(float32ToFloat16(2 ** -25 * 1.0000001)).toBe(0x0001);
    expect(float32ToFloat16(3 * 2 ** -26)).toBe(0x0001);
    expect(float32ToFloat16(1e-8)).toBe(0x0000);
    expect(float32ToFloat16(-1e-8)).toBe(0x8000);
  });

  it("rounds ties to even", () => {
    expect(float32ToFloat16(1 + 2 ** -11)).toBe(0x3c00); // between 0x3c00 and 0x3c01
    expect(float32ToFloat16(1 + 3 * 2 ** -11)).toBe(0x3c02); // between 0x3c01 and 0x3c02
    expect(float32ToFloat16(1 + 2 ** -11 + 2 ** -30)).toBe(0x3c01); // just above the tie
    expect(float32ToFloat16(2049)).toBe(0x6800); // 2048
    expect(float32ToFloat16(2051)).toBe(0x6802); // 2052
    expect(float32ToFloat16(1 / 3)).toBe(0x3555);
  });

  it("overflows to infinity past the largest half", () => {
    expect(float32ToFloat16(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16(65520)).toBe(0x7c00);
    expect(float32ToFloat16(1e6)).toBe(0x7c00);
    expect(float32ToFloat16(-1e6)).toBe(0xfc00);
    expect(float32ToFloat16(Infinity)).toBe(0x7c00);
    expect(float32ToFloat16(-Infinity)).toBe(0xfc00);
  });

  it("encodes NaN as a NaN bit pattern", () => {
    const bits = float32ToFloat16(NaN);
    expect(bits & 0x7c00).toBe(0x7c00);
    expect(bits & 0x03ff).not.toBe(0);
  });
});

describe("float16ToFloat32", () => {
  it("decodes known bit patterns", () => {
    expect(float16ToFloat32(0x0000)).toBe(0);
    expect(Object.is(float16ToFloat32(0x8000), -0)).toBe(true);
    expect(float16ToFloat32(0x3c00)).toBe(1);
    expect(float16ToFloat32(0x7bff)).toBe(65504);
    expect(float16ToFloat32(0x0400)).toBe(6.103515625e-5);
    expect(float16ToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16ToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16ToFloat32(0x3555)).toBe(0.333251953125);
    expect(float16ToFloat32(0x7c00)).toBe(Infinity);
    expect(float16ToFloat32(0xfc00)).toBe(-Infinity);
    expect(float16ToFloat32(0x7e00)).toBeNaN();
    expect(float16ToFloat32(0xfe01)).toBeNaN();
  });

  it("round-trips every non-NaN half", () => {
    const mismatches: number[] = [];
    for (let bits = 0; bits <= 0xffff; bits++) {
      const v = float16ToFloat32(bits);
      if (Number.isNaN(v)) continue;
      if (float32ToFloat16(v) !== bits) mismatches.push(bits);
    }
    expect(mismatches).toEqual([]);
  });
});

describe("sliceRows", () => {
  const t = f32([4, 2], [0, 1, 2, 3, 4, 5, 6, 7]);

  it("returns the rows as a view over the same buffer", () => {
    const s = sliceRows(t, 1, 3);
    expect(s.dims).toEqual([2, 2]);
    expect(Array.from(s.data as Float32Array)).toEqual([2, 3, 4, 5]);
    expect(s.data.buffer).toBe(t.data.buffer);
    (s.data as Float32Array)[0] = 42;
    expect((t.data as Float32Array)[2]).toBe(42);
    (s.data as Float32Array)[0] = 2;
  });

  it("slices a slice at the right offset", () => {
    const inner = sliceRows(sliceRows(t, 1, 4), 1, 2);
    expect(inner.dims).toEqual([1, 2]);
    expect(Array.from(inner.data as Float32Array)).toEqual([4, 5]);
  });

  it("allows empty ranges and whole ranges", () => {
    expect(sliceRows(t, 2, 2).dims).toEqual([0, 2]);
    expect(sliceRows(t, 2, 2).data.length).toBe(0);
    expect(Array.from(sliceRows(t, 0, 4).data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("keeps int64 and float16 element sizes", () => {
    const i64: Tensor = { dtype: "int64", dims: [3], data: BigInt64Array.from([1n, -2n, 2n ** 62n]) };
    expect(Array.from(sliceRows(i64, 1, 3).data as BigInt64Array)).toEqual([-2n, 2n ** 62n]);
    const f16: Tensor = { dtype: "float16", dims: [3, 1], data: Uint16Array.from([0x3c00, 0x4000, 0x4200]) };
    expect(Array.from(sliceRows(f16, 2, 3).data as Uint16Array)).toEqual([0x4200]);
  });

  it("rejects ranges out of bounds and 0-d tensors with E_SHAPE", () => {
    expect(codeOf(() => sliceRows(t, 3, 5))).toBe("E_SHAPE");
    expect(codeOf(() => sliceRows(t, -1, 2))).toBe("E_SHAPE");
    expect(codeOf(() => sliceRows(t, 3, 2))).toBe("E_SHAPE");
    expect(codeOf(() => sliceRows(t, 0.5, 2))).toBe("E_SHAPE");
    expect(messageOf(() => sliceRows(t, 3, 5))).toContain("0 <= start <= end <= 4");
    expect(codeOf(() => sliceRows(f32([], [1]), 0, 1))).toBe("E_SHAPE");
  });
});

describe("concatRows", () => {
  it("joins rows in order into a fresh buffer", () => {
    const a = f32([1, 3], [1, 2, 3]);
    const b = f32([2, 3], [4, 5, 6, 7, 8, 9]);
    const c = f32([0, 3], []);
    const out = concatRows([a, c, b]);
    expect(out.dtype).toBe("float32");
    expect(out.dims).toEqual([3, 3]);
    expect(Array.from(out.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(out.data.buffer).not.toBe(a.data.buffer);
  });

  it("undoes sliceRows, including for views with an offset", () => {
    const whole: Tensor = { dtype: "int64", dims: [5, 2], data: BigInt64Array.from([0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]) };
    const parts = [sliceRows(whole, 0, 2), sliceRows(whole, 2, 3), sliceRows(whole, 3, 5)];
    const out = concatRows(parts);
    expect(out.dims).toEqual([5, 2]);
    expect(Array.from(out.data as BigInt64Array)).toEqual(Array.from(whole.data as BigInt64Array));
  });

  it("rejects mixed dtypes with E_DTYPE", () => {
    const a = f32([1, 2], [1, 2]);
    const b: Tensor = { dtype: "float64", dims: [1, 2], data: Float64Array.from([3, 4]) };
    expect(codeOf(() => concatRows([a, b]))).toBe("E_DTYPE");
    expect(messageOf(() => concatRows([a, b]))).toContain("tensor 1 is float64 but tensor 0 is float32");
  });

  it("rejects differing trailing dims, 0-d tensors, bad data and an empty list with E_SHAPE", () => {
    const a = f32([1, 2], [1, 2]);
    expect(codeOf(() => concatRows([a, f32([1, 3], [1, 2, 3])]))).toBe("E_SHAPE");
    expect(messageOf(() => concatRows([a, f32([1, 3], [1, 2, 3])]))).toContain("all dims but the first must match");
    expect(codeOf(() => concatRows([a, f32([2, 1], [1, 2])]))).toBe("E_SHAPE");
    expect(concatRows([a, f32([3, 2], [3, 4, 5, 6, 7, 8])]).dims).toEqual([4, 2]);
    expect(codeOf(() => concatRows([a, f32([2, 1, 1], [1, 2])]))).toBe("E_SHAPE");
    expect(codeOf(() => concatRows([f32([], [1])]))).toBe("E_SHAPE");
    expect(codeOf(() => concatRows([f32([2, 2], [1, 2, 3])]))).toBe("E_SHAPE");
    expect(codeOf(() => concatRows([]))).toBe("E_SHAPE");
  });
});

describe("toFloat64Array", () => {
  it("decodes float16, int64 and bool", () => {
    expect(Array.from(toFloat64Array({ dtype: "float16", dims: [3], data: Uint16Array.from([0x3c00, 0xc000, 0x7bff]) }))).toEqual([
      1, -2, 65504,
    ]);
    expect(Array.from(toFloat64Array({ dtype: "int64", dims: [2], data: BigInt64Array.from([-5n, 2n ** 40n]) }))).toEqual([
      -5,
      2 ** 40,
    ]);
    expect(Array.from(toFloat64Array({ dtype: "bool", dims: [2], data: Uint8Array.from([1, 0]) }))).toEqual([1, 0]);
    expect(Array.from(toFloat64Array({ dtype: "int8", dims: [2], data: Int8Array.from([-128, 127]) }))).toEqual([-128, 127]);
  });
});

describe("maxAbsDiff", () => {
  it("returns the largest element-wise difference", () => {
    expect(maxAbsDiff(f32([2, 2], [1, 2, 3, 4]), f32([2, 2], [1, 2.5, 1, 4]))).toBe(2);
    expect(maxAbsDiff(f32([2], [1, 2]), f32([2], [1, 2]))).toBe(0);
  });

  it("compares across dtypes by value", () => {
    const half: Tensor = { dtype: "float16", dims: [2], data: Uint16Array.from([0x3c00, 0x3800]) };
    expect(maxAbsDiff(half, f32([2], [1, 0.75]))).toBe(0.25);
  });

  it("treats matching NaNs and infinities as equal and a lone NaN as infinitely far", () => {
    expect(maxAbsDiff(f32([2], [NaN, Infinity]), f32([2], [NaN, Infinity]))).toBe(0);
    expect(maxAbsDiff(f32([2], [NaN, 1]), f32([2], [0, 1]))).toBe(Infinity);
  });

  it("rejects different dims with E_SHAPE", () => {
    expect(codeOf(() => maxAbsDiff(f32([2, 2], [1, 2, 3, 4]), f32([4], [1, 2, 3, 4])))).toBe("E_SHAPE");
  });
});

describe("allClose", () => {
  it("passes within rtol and atol, reporting the figures", () => {
    const r = allClose(f32([3], [1, 2.0001, 0]), f32([3], [1, 2, 0]), { rtol: 1e-3, atol: 0 });
    expect(r.ok).toBe(true);
    expect(r.maxAbs).toBeCloseTo(1e-4, 6);
    expect(r.maxRel).toBeCloseTo(5e-5, 6);
    expect(r.worstIndex).toBe(1);
  });

  it("fails outside tolerance and points at the worst element", () => {
    const r = allClose(f32([4], [1, 2, 3, 4]), f32([4], [1, 2.1, 3, 5]), { rtol: 0, atol: 0.2 });
    expect(r.ok).toBe(false);
    expect(r.maxAbs).toBe(1);
    expect(r.maxRel).toBeCloseTo(0.2, 6);
    expect(r.worstIndex).toBe(3);
  });

  it("uses atol where the reference is zero, where relative error is infinite", () => {
    const r = allClose(f32([2], [1e-9, 0]), f32([2], [0, 0]));
    expect(r.ok).toBe(true);
    expect(r.maxRel).toBe(Infinity);
    expect(allClose(f32([1], [1e-7]), f32([1], [0])).ok).toBe(false);
  });

  it("uses NumPy's default tolerances", () => {
    expect(allClose(f32([1], [100.0009]), f32([1], [100])).ok).toBe(true);
    expect(allClose(f32([1], [100.002]), f32([1], [100])).ok).toBe(false);
  });

  it("reports -1 for empty tensors and rejects different dims", () => {
    expect(allClose(f32([0], []), f32([0], []))).toEqual({ ok: true, maxAbs: 0, maxRel: 0, worstIndex: -1 });
    expect(codeOf(() => allClose(f32([1], [1]), f32([1, 1], [1])))).toBe("E_SHAPE");
  });
});
