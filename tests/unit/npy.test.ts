import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { codeOf, errorOf } from "../harness/errors.js";
import { EdgepoolError } from "../../shared/errors.js";
import {
  NPY_PREFIX_BYTES,
  decodeNpy,
  encodeNpy,
  encodeNpyHeader,
  npyHeaderLength,
  parseNpyHeader,
} from "../../shared/tensor/npy.js";
import {
  NpyRowReader,
  NpyRowWriter,
  readFully,
  readNpyFile,
  readNpyFileHeader,
  writeFully,
  writeNpyFile,
} from "../../shared/node/npy-file.js";
import type { DType, Tensor } from "../../shared/tensor/tensor.js";
import { DTYPES, tensorBytes } from "../../shared/tensor/tensor.js";
import { sliceRows } from "../../shared/tensor/tensor-ops.js";

/** Bytes of a latin1 string, as Python's b"..." literals spell them. */
function latin1(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A v1.0 header the way NumPy writes it: dict, spaces, "\n", data at a multiple of 64. */
function numpyV1(dict: string, total = 128): Uint8Array {
  const body = dict + " ".repeat(total - 10 - dict.length - 1) + "\n";
  return latin1("\x93NUMPY\x01\x00" + String.fromCharCode(body.length & 0xff, body.length >> 8) + body);
}



function errorOfSync(fn: () => unknown): EdgepoolError {
  try {
    fn();
  } catch (err) {
    if (err instanceof EdgepoolError) return err;
    throw new Error(`expected an EdgepoolError, got ${String(err)}`);
  }
  throw new Error("expected an error, none was thrown");
}

/** A tensor of every dtype with values that exercise sign, range and (for int64) 64 bits. */
function sample(dtype: DType, dims: number[]): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const idx = Array.from({ length: n }, (_, i) => i);
  switch (dtype) {
    case "float32":
      return { dtype, dims, data: Float32Array.from(idx, (i) => (i - n / 2) * 1.25) };
    case "float16":
      return { dtype, dims, data: Uint16Array.from(idx, (i) => (0x3c00 + i * 7) & 0xffff) };
    case "float64":
      return { dtype, dims, data: Float64Array.from(idx, (i) => Math.PI * (i - 3)) };
    case "int8":
      return { dtype, dims, data: Int8Array.from(idx, (i) => ((i * 37) % 256) - 128) };
    case "uint8":
      return { dtype, dims, data: Uint8Array.from(idx, (i) => (i * 53) % 256) };
    case "int32":
      return { dtype, dims, data: Int32Array.from(idx, (i) => (i - 5) * 100_003) };
    case "int64":
      return { dtype, dims, data: BigInt64Array.from(idx, (i) => (BigInt(i) - 4n) * 2n ** 40n + 7n) };
    case "bool":
      return { dtype, dims, data: Uint8Array.from(idx, (i) => (i % 3 === 0 ? 1 : 0)) };
  }
}

function valuesOf(t: Tensor): unknown[] {
  return Array.from(t.data as ArrayLike<unknown>);
}

describe("parseNpyHeader on headers as NumPy writes them", () => {
  it("reads a NumPy 2.x float32 (3, 4) header", () => {
    const bytes = numpyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" + " ".repeat(20));
    expect(bytes.byteLength).toBe(128);
    expect(parseNpyHeader(bytes)).toEqual({ dtype: "float32", shape: [3, 4], fortranOrder: false, headerBytes: 128, version: 1 });
  });

  it("reads shape (5,) and shape ()", () => {
    expect(parseNpyHeader(numpyV1("{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }")).shape).toEqual([5]);
    const scalar = parseNpyHeader(numpyV1("{'descr': '<f8', 'fortran_order': False, 'shape': (), }"));
    expect(scalar.shape).toEqual([]);
    expect(scalar.dtype).toBe("float64");
  });

  it("reads an old NumPy header (16-byte aligned, no growth padding) and a Python 2 header with long ints", () => {
    expect(parseNpyHeader(numpyV1("{'descr': '|b1', 'fortran_order': False, 'shape': (2, 3), }", 80))).toEqual({
      dtype: "bool",
      shape: [2, 3],
      fortranOrder: false,
      headerBytes: 80,
      version: 1,
    });
    expect(parseNpyHeader(numpyV1("{'descr': '<i8', 'fortran_order': False, 'shape': (3L, 4L), }")).shape).toEqual([3, 4]);
  });

  it("tolerates key order, double quotes, lists and missing trailing commas", () => {
    const h = parseNpyHeader(numpyV1(`{"shape": [7, 2], "fortran_order": False, "descr": "=i4"}`));
    expect(h.dtype).toBe("int32");
    expect(h.shape).toEqual([7, 2]);
  });

  it("maps every supported descr, with '<', '=' and '|' where they mean the same", () => {
    const cases: [string, DType][] = [
      ["<f4", "float32"],
      ["=f4", "float32"],
      ["<f2", "float16"],
      ["<f8", "float64"],
      ["|i1", "int8"],
      ["<i1", "int8"],
      ["|u1", "uint8"],
      ["=u1", "uint8"],
      ["<i4", "int32"],
      ["<i8", "int64"],
      ["=i8", "int64"],
      ["|b1", "bool"],
      ["<b1", "bool"],
    ];
    for (const [descr, dtype] of cases) {
      const h = parseNpyHeader(numpyV1(`{'descr': '${descr}', 'fortran_order': False, 'shape': (1,), }`));
      expect([descr, h.dtype]).toEqual([descr, dtype]);
    }
  });

  it("reads a version 2.0 header", () => {
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" + " ".repeat(20);
    const body = dict + " ".repeat(128 - 12 - dict.length - 1) + "\n";
    const bytes = latin1("\x93NUMPY\x02\x00" + String.fromCharCode(body.length, 0, 0, 0) + body);
    expect(npyHeaderLength(bytes.subarray(0, NPY_PREFIX_BYTES))).toBe(128);
    expect(parseNpyHeader(bytes)).toEqual({ dtype: "float32", shape: [3, 4], fortranOrder: false, headerBytes: 128, version: 2 });
  });

  it("accepts fortran_order True where the layout equals C order", () => {
    const h = parseNpyHeader(numpyV1("{'descr': '<f4', 'fortran_order': True, 'shape': (5, 1), }"));
    expect(h.fortranOrder).toBe(false);
    expect(h.shape).toEqual([5, 1]);
  });
});

describe("parseNpyHeader rejections", () => {
  const header = (descr: string, fortran = "False", shape = "(2, 3)") =>
    numpyV1(`{'descr': ${descr}, 'fortran_order': ${fortran}, 'shape': ${shape}, }`);

  it("rejects big-endian data and says how to convert", () => {
    const err = errorOfSync(() => parseNpyHeader(header("'>f4'")));
    expect(err.code).toBe("E_NPY");
    expect(err.message).toContain("big-endian");
    expect(err.message).toContain("astype('<f4')");
  });

  it("rejects Fortran order and says how to convert", () => {
    const err = errorOfSync(() => parseNpyHeader(header("'<f4'", "True")));
    expect(err.code).toBe("E_NPY");
    expect(err.message).toContain("np.ascontiguousarray");
  });

  it("rejects strings, objects, complex, unsupported ints and structured arrays", () => {
    for (const descr of ["'<U5'", "'|O'", "'<c8'", "'<i2'", "'<u4'", "[('a', '<f4'), ('b', '<i4')]"]) {
      expect([descr, codeOf(() => parseNpyHeader(header(descr)))]).toEqual([descr, "E_NPY"]);
    }
    expect(errorOfSync(() => parseNpyHeader(header("'<U5'"))).message).toContain("string dtype");
    expect(errorOfSync(() => parseNpyHeader(header("'<i2'"))).message).toContain("astype('<i4')");
  });

  it("rejects bad shapes, missing keys and garbage dicts", () => {
    expect(codeOf(() => parseNpyHeader(header("'<f4'", "False", "(-1, 3)")))).toBe("E_NPY");
    expect(codeOf(() => parseNpyHeader(header("'<f4'", "False", "(2.5,)")))).toBe("E_NPY");
    expect(codeOf(() => parseNpyHeader(numpyV1("{'descr': '<f4', 'shape': (2,), }")))).toBe("E_NPY");
    expect(codeOf(() => parseNpyHeader(numpyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)")))).toBe("E_NPY");
    expect(codeOf(() => parseNpyHeader(numpyV1("{'descr': __import__('os'), }")))).toBe("E_NPY");
    expect(codeOf(() => parseNpyHeader(numpyV1("(((((((((((((((((((((((((((((((((((((((((")))).toBe("E_NPY");
  });

  it("rejects bytes that are not .npy, unknown versions and truncated headers", () => {
    const notNpy = errorOfSync(() => parseNpyHeader(latin1("PK\x03\x04 this is a zip file")));
    expect(notNpy.code).toBe("E_NPY");
    expect(notNpy.message).toContain("magic bytes missing");
    const v9 = numpyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }");
    v9[6] = 9;
    expect(codeOf(() => parseNpyHeader(v9))).toBe("E_NPY");
    const whole = header("'<f4'");
    expect(codeOf(() => parseNpyHeader(whole.subarray(0, 100)))).toBe("E_NPY");
    expect(codeOf(() => parseNpyHeader(whole.subarray(0, 9)))).toBe("E_NPY");
  });
});

describe("encodeNpyHeader", () => {
  it("writes the exact bytes NumPy writes", () => {
    const cases: [DType, number[], string][] = [
      ["float32", [3, 4], "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" + " ".repeat(20)],
      ["float16", [5], "{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }" + " ".repeat(20)],
      ["float64", [], "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"],
      ["bool", [2], "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }" + " ".repeat(20)],
      ["int64", [0, 7], "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 7), }" + " ".repeat(20)],
    ];
    for (const [dtype, shape, dict] of cases) {
      expect(Array.from(encodeNpyHeader(dtype, shape))).toEqual(Array.from(numpyV1(dict)));
    }
  });

  it("aligns the data to 64 bytes and round-trips through the parser for every dtype", () => {
    for (const dtype of DTYPES) {
      for (const shape of [[], [1], [123456789012, 3], [2, 3, 4, 5, 6, 7]]) {
        const bytes = encodeNpyHeader(dtype, shape);
        expect(bytes.byteLength % 64).toBe(0);
        expect(bytes[bytes.byteLength - 1]).toBe(0x0a);
        expect(parseNpyHeader(bytes)).toEqual({ dtype, shape, fortranOrder: false, headerBytes: bytes.byteLength, version: 1 });
      }
    }
  });

  it("switches to version 2.0 when the header outgrows 64 KiB", () => {
    const shape = new Array<number>(30_000).fill(1);
    const bytes = encodeNpyHeader("uint8", shape);
    expect(bytes[6]).toBe(2);
    expect(bytes.byteLength % 64).toBe(0);
    expect(npyHeaderLength(bytes.subarray(0, NPY_PREFIX_BYTES))).toBe(bytes.byteLength);
    const h = parseNpyHeader(bytes);
    expect(h.version).toBe(2);
    expect(h.shape.length).toBe(30_000);
  });

  it("rejects negative or fractional dims with E_SHAPE", () => {
    expect(codeOf(() => encodeNpyHeader("float32", [-1]))).toBe("E_SHAPE");
    expect(codeOf(() => encodeNpyHeader("float32", [1.5]))).toBe("E_SHAPE");
  });
});

describe("npyHeaderLength", () => {
  it("needs only the prefix", () => {
    const bytes = encodeNpyHeader("int32", [4, 4]);
    expect(npyHeaderLength(bytes.subarray(0, NPY_PREFIX_BYTES))).toBe(128);
    expect(npyHeaderLength(bytes.subarray(0, 10))).toBe(128);
  });
});

describe("encodeNpy / decodeNpy", () => {
  it("round-trips every dtype", () => {
    for (const dtype of DTYPES) {
      const t = sample(dtype, [3, 5]);
      const back = decodeNpy(encodeNpy(t));
      expect(back.dtype).toBe(dtype);
      expect(back.dims).toEqual([3, 5]);
      expect(valuesOf(back)).toEqual(valuesOf(t));
    }
  });

  it("round-trips scalars and empty arrays", () => {
    const scalar: Tensor = { dtype: "float64", dims: [], data: Float64Array.from([2.5]) };
    expect(valuesOf(decodeNpy(encodeNpy(scalar)))).toEqual([2.5]);
    const empty = decodeNpy(encodeNpy({ dtype: "int32", dims: [0, 4], data: new Int32Array(0) }));
    expect(empty.dims).toEqual([0, 4]);
    expect(empty.data.length).toBe(0);
  });

  it("views the input when aligned and copies when not", () => {
    const t = sample("float64", [2, 2]);
    const bytes = encodeNpy(t);
    const aligned = decodeNpy(bytes);
    expect(aligned.data.buffer).toBe(bytes.buffer);

    const shifted = new Uint8Array(bytes.byteLength + 1);
    shifted.set(bytes, 1);
    const misaligned = shifted.subarray(1);
    const copied = decodeNpy(misaligned);
    expect(copied.data.buffer).not.toBe(shifted.buffer);
    expect(valuesOf(copied)).toEqual(valuesOf(t));
  });

  it("reads the data that follows a hand-written NumPy header", () => {
    const header = numpyV1("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }" + " ".repeat(20));
    const bytes = new Uint8Array(header.byteLength + 8);
    bytes.set(header);
    new DataView(bytes.buffer).setInt32(header.byteLength, -7, true);
    new DataView(bytes.buffer).setInt32(header.byteLength + 4, 65536, true);
    expect(valuesOf(decodeNpy(bytes))).toEqual([-7, 65536]);
  });

  it("rejects truncated data and trailing bytes with E_NPY", () => {
    const bytes = encodeNpy(sample("float32", [3, 4]));
    const short = errorOfSync(() => decodeNpy(bytes.subarray(0, bytes.byteLength - 1)));
    expect(short.code).toBe("E_NPY");
    expect(short.message).toContain("truncated");
    const long = new Uint8Array(bytes.byteLength + 4);
    long.set(bytes);
    expect(codeOf(() => decodeNpy(long))).toBe("E_NPY");
  });

  it("rejects a tensor whose data does not match its dims with E_SHAPE", () => {
    expect(codeOf(() => encodeNpy({ dtype: "float32", dims: [2, 2], data: new Float32Array(3) }))).toBe("E_SHAPE");
  });
});

describe("readFully / writeFully", () => {
  it("loops over short reads until the target is full, and stops at end of file", async () => {
    const source = Uint8Array.from({ length: 10_000 }, (_, i) => i % 251);
    let calls = 0;
    const shortReader = {
      async read(buffer: Uint8Array, offset: number, length: number, position: number) {
        calls++;
        const n = Math.max(0, Math.min(length, 1000, source.byteLength - position));
        buffer.set(source.subarray(position, position + n), offset);
        return { bytesRead: n };
      },
    };
    const target = new Uint8Array(4500);
    expect(await readFully(shortReader, target, 300)).toBe(4500);
    expect(Array.from(target)).toEqual(Array.from(source.subarray(300, 4800)));
    expect(calls).toBe(5);

    const past = new Uint8Array(500);
    expect(await readFully(shortReader, past, 9800)).toBe(200);
  });

  it("loops over short writes", async () => {
    const sink = new Uint8Array(5000);
    let calls = 0;
    const shortWriter = {
      async write(buffer: Uint8Array, offset: number, length: number, position: number) {
        calls++;
        const n = Math.min(length, 700);
        sink.set(buffer.subarray(offset, offset + n), position);
        return { bytesWritten: n };
      },
    };
    const data = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) % 256);
    await writeFully(shortWriter, data, 1000);
    expect(Array.from(sink.subarray(1000, 4000))).toEqual(Array.from(data));
    expect(calls).toBe(5);
  });
});

describe("npy files", () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "edgepool-npy-"));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gathers small row writes made together, in any order, into the right places", async () => {
    const file = path.join(dir, "out.npy");
    const w = await NpyRowWriter.create(file, "float32", [100, 4]);
    const row = (r: number) => new Uint8Array(Float32Array.from([r, r + 0.25, r + 0.5, r + 0.75]).buffer);
    const order = [5, 3, 4, 99, 0, 1, 2, 50, 51, 98];
    await Promise.all(order.map((r) => w.writeRows(r, row(r))));
    const rest = Array.from({ length: 100 }, (_, r) => r).filter((r) => !order.includes(r));
    const last = rest.map((r) => w.writeRows(r, row(r))); // not awaited: close() must wait for them
    await w.close();
    await Promise.all(last);
    const got = await readNpyFile(file);
    expect(Array.from(got.data as Float32Array)).toEqual(Array.from({ length: 400 }, (_, i) => Math.floor(i / 4) + (i % 4) * 0.25));
    await expect(w.writeRows(0, row(0))).rejects.toThrow(/write after close/);
  });


  it("keeps every row while writes go on during its background flushes (past 32 MB written)", async () => {
    const file = path.join(dir, "flushed.npy");
    const rows = 80; // 80 rows of 1 MiB: two background flushes start while rows are still written
    const width = 262_144;
    const w = await NpyRowWriter.create(file, "float32", [rows, width]);
    const row = (r: number) => new Uint8Array(new Float32Array(width).fill(r + 0.5).buffer);
    // Out of order and eight at a time, as results arrive from several workers.
    const order = Array.from({ length: rows }, (_, i) => (i * 37) % rows);
    for (let i = 0; i < rows; i += 8) await Promise.all(order.slice(i, i + 8).map((r) => w.writeRows(r, row(r))));
    await w.close();
    const got = await readNpyFile(file);
    const data = got.data as Float32Array;
    for (let r = 0; r < rows; r++) {
      expect([r, data[r * width], data[r * width + width - 1]]).toEqual([r, r + 0.5, r + 0.5]);
    }
  });
  it("serves small row reads in any order and at once, across read-ahead blocks, with the file's exact bytes", async () => {
    const rows = 6000; // 6000 x 64 float32 = 1.5 MB: more than one read-ahead block
    const data = new Float32Array(rows * 64).map((_, i) => i);
    const file = path.join(dir, "big.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [rows, 64], data });
    const reader = await NpyRowReader.open(file);
    try {
      const ranges: Array<[number, number]> = [[5990, 6000], [0, 1], [4090, 4100], [1, 3], [2047, 2049], [3000, 3500], [10, 11], [5999, 6000]];
      const got = await Promise.all(ranges.map(([s, e]) => reader.readRows(s, e)));
      ranges.forEach(([s, e], k) => {
        expect(Array.from(got[k]!.data as Float32Array)).toEqual(Array.from(data.subarray(s * 64, e * 64)));
      });
      await expect(reader.readRows(5999, 6001)).rejects.toThrow(EdgepoolError);
    } finally {
      await reader.close();
    }
  });

  it("round-trips every dtype through writeNpyFile / readNpyFile, with the same bytes as encodeNpy", async () => {
    for (const dtype of DTYPES) {
      const file = path.join(dir, `${dtype}.npy`);
      const t = sample(dtype, [4, 3]);
      await writeNpyFile(file, t);
      expect(Array.from(await readFile(file))).toEqual(Array.from(encodeNpy(t)));
      const back = await readNpyFile(file);
      expect([dtype, back.dtype, back.dims]).toEqual([dtype, dtype, [4, 3]]);
      expect(valuesOf(back)).toEqual(valuesOf(t));
    }
  });

  it("round-trips every dtype through NpyRowWriter / NpyRowReader", async () => {
    for (const dtype of DTYPES) {
      const file = path.join(dir, `rows-${dtype}.npy`);
      const t = sample(dtype, [5, 2, 3]);
      const w = await NpyRowWriter.create(file, dtype, [5, 2, 3]);
      await w.writeRows(0, tensorBytes(sliceRows(t, 0, 5)));
      await w.close();
      const r = await NpyRowReader.open(file);
      expect(r.rows).toBe(5);
      expect(r.rowBytes).toBe(6 * tensorBytes(t).byteLength / 30);
      const back = await r.readRows(0, 5);
      await r.close();
      expect(back.dims).toEqual([5, 2, 3]);
      expect(valuesOf(back)).toEqual(valuesOf(t));
    }
  });

  it("writes no file under the real name until the data is complete, and leaves no temp file", async () => {
    const file = path.join(dir, "out.npy");
    await writeNpyFile(file, sample("int32", [2, 2]));
    expect(await readdir(dir)).toEqual(["out.npy"]);
    await writeNpyFile(file, sample("int32", [3, 2]));
    expect((await readNpyFile(file)).dims).toEqual([3, 2]);
    expect(await readdir(dir)).toEqual(["out.npy"]);
  });

  it("reads only the header with readNpyFileHeader", async () => {
    const file = path.join(dir, "h.npy");
    await writeNpyFile(file, sample("float16", [6, 2]));
    expect(await readNpyFileHeader(file)).toEqual({ dtype: "float16", shape: [6, 2], fortranOrder: false, headerBytes: 128, version: 1 });
  });

  it("reads a row range equal to slicing the whole tensor", async () => {
    const file = path.join(dir, "range.npy");
    const t = sample("float32", [10, 3]);
    await writeNpyFile(file, t);
    const r = await NpyRowReader.open(file);
    try {
      for (const [start, end] of [[0, 10], [3, 7], [9, 10], [4, 4]] as const) {
        const part = await r.readRows(start, end);
        expect(part.dims).toEqual([end - start, 3]);
        expect(valuesOf(part)).toEqual(valuesOf(sliceRows(t, start, end)));
      }
      const target = new Uint8Array(2 * r.rowBytes);
      await r.readRowsInto(5, 7, target);
      expect(Array.from(target)).toEqual(Array.from(tensorBytes(sliceRows(t, 5, 7))));
    } finally {
      await r.close();
    }
  });

  it("reads rows larger than 64 KiB completely", async () => {
    const file = path.join(dir, "big.npy");
    const t = sample("float32", [3, 40_000]); // 160,000-byte rows
    await writeNpyFile(file, t);
    const r = await NpyRowReader.open(file);
    try {
      expect(r.rowBytes).toBe(160_000);
      const part = await r.readRows(1, 3);
      expect(part.data.byteLength).toBe(320_000);
      expect(valuesOf(part)).toEqual(valuesOf(sliceRows(t, 1, 3)));
    } finally {
      await r.close();
    }
  });

  it("rejects bad row ranges and wrong-sized targets with E_SHAPE, and reads after close with E_STATE", async () => {
    const file = path.join(dir, "r.npy");
    await writeNpyFile(file, sample("int64", [4, 2]));
    const r = await NpyRowReader.open(file);
    expect((await errorOf(r.readRows(3, 5))).code).toBe("E_SHAPE");
    expect((await errorOf(r.readRows(-1, 1))).code).toBe("E_SHAPE");
    expect((await errorOf(r.readRowsInto(0, 2, new Uint8Array(31)))).code).toBe("E_SHAPE");
    await r.close();
    await r.close();
    expect((await errorOf(r.readRows(0, 1))).code).toBe("E_STATE");
  });

  it("writes shards out of order into the same bytes as writeNpyFile of the whole tensor", async () => {
    const t = sample("float64", [10, 4]);
    const whole = path.join(dir, "whole.npy");
    await writeNpyFile(whole, t);

    const sharded = path.join(dir, "sharded.npy");
    const w = await NpyRowWriter.create(sharded, "float64", [10, 4]);
    expect((await stat(sharded)).size).toBe((await stat(whole)).size); // preallocated
    const shards: [number, number][] = [[7, 10], [0, 3], [5, 7], [3, 5]];
    await Promise.all(shards.map(([s, e]) => w.writeRows(s, tensorBytes(sliceRows(t, s, e)))));
    await w.close();
    await w.close();

    expect(Array.from(await readFile(sharded))).toEqual(Array.from(await readFile(whole)));
    expect((await errorOf(w.writeRows(0, new Uint8Array(32)))).code).toBe("E_STATE");
  });

  it("keeps written rows when reopened with the same header, and resets a file with another", async () => {
    const file = path.join(dir, "resume.npy");
    const t = sample("int32", [4, 2]);
    const first = await NpyRowWriter.create(file, "int32", [4, 2]);
    await first.writeRows(0, tensorBytes(sliceRows(t, 0, 2)));
    await first.close();
    const second = await NpyRowWriter.create(file, "int32", [4, 2]);
    await second.writeRows(2, tensorBytes(sliceRows(t, 2, 4)));
    await second.close();
    expect(valuesOf(await readNpyFile(file))).toEqual(valuesOf(t));

    const other = await NpyRowWriter.create(file, "int32", [3, 2]);
    await other.close();
    expect(valuesOf(await readNpyFile(file))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it("rejects partial rows and rows past the end when writing", async () => {
    const w = await NpyRowWriter.create(path.join(dir, "w.npy"), "float32", [4, 2]);
    try {
      expect((await errorOf(w.writeRows(0, new Uint8Array(12)))).code).toBe("E_SHAPE");
      expect((await errorOf(w.writeRows(3, new Uint8Array(16)))).code).toBe("E_SHAPE");
    } finally {
      await w.close();
    }
    expect((await errorOf(NpyRowWriter.create(path.join(dir, "s.npy"), "float32", []))).code).toBe("E_SHAPE");
  });

  it("reports a missing file as E_IO naming the path", async () => {
    const file = path.join(dir, "missing.npy");
    // One at a time: a rejection left waiting while another is awaited counts as unhandled.
    for (const open of [() => readNpyFileHeader(file), () => NpyRowReader.open(file), () => readNpyFile(file)]) {
      const err = await errorOf(open());
      expect(err.code).toBe("E_IO");
      expect(err.message).toBe(`${file}: no such file`);
    }
  });

  it("reports a file that is not .npy as E_NPY naming the path", async () => {
    const file = path.join(dir, "data.csv");
    await writeFile(file, "a,b,c\n1,2,3\n");
    // One at a time: a rejection left waiting while another is awaited counts as unhandled.
    for (const open of [() => readNpyFileHeader(file), () => NpyRowReader.open(file), () => readNpyFile(file)]) {
      const err = await errorOf(open());
      expect(err.code).toBe("E_NPY");
      expect(err.message).toContain(`${file} is not a NumPy .npy file (magic bytes missing)`);
    }
    const tiny = path.join(dir, "tiny.npy");
    await writeFile(tiny, "\x93N");
    expect((await errorOf(readNpyFileHeader(tiny))).code).toBe("E_NPY");
  });

  it("reports truncated files as E_NPY when opened or read whole", async () => {
    const file = path.join(dir, "cut.npy");
    await writeNpyFile(file, sample("float32", [8, 8]));
    await truncate(file, 128 + 8 * 8 * 4 - 5);
    for (const open of [() => NpyRowReader.open(file), () => readNpyFile(file)]) {
      const err = await errorOf(open());
      expect(err.code).toBe("E_NPY");
      expect(err.message).toContain(file);
      expect(err.message).toContain("truncated");
    }
    await truncate(file, 100);
    expect((await errorOf(readNpyFileHeader(file))).code).toBe("E_NPY");
  });

  it("reports unsupported dtypes in a file as E_NPY naming the path", async () => {
    const file = path.join(dir, "be.npy");
    const header = numpyV1("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }" + " ".repeat(20));
    await writeFile(file, Buffer.concat([header, new Uint8Array(8)]));
    const err = await errorOf(readNpyFileHeader(file));
    expect(err.code).toBe("E_NPY");
    expect(err.message).toContain(file);
    expect(err.message).toContain("big-endian");
  });
});
