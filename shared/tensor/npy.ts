/**
 * The NumPy .npy format (versions 1.0, 2.0 and 3.0), little-endian C-order arrays of the
 * project's dtypes only. A file is: magic "\x93NUMPY", major and minor version bytes, the
 * header length (uint16 LE in v1, uint32 LE in v2/v3), then a Python dict literal such as
 * "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" padded with spaces and "\n"
 * so that the data starts at a multiple of 64 bytes, then the raw element bytes.
 *
 * A reader needs only the first NPY_PREFIX_BYTES to learn the header length
 * (npyHeaderLength), then the header itself (parseNpyHeader); the data is never needed to
 * understand a file. No `node:` imports: the browser worker reuses this module.
 */
import { z } from "zod";
import { EdgepoolError } from "../errors.js";
import { bytesPerElement, checkTensor, elementCount, tensorBytes, viewOf } from "./tensor.js";
import type { DType, Tensor } from "./tensor.js";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59] as const; // "\x93NUMPY"
const ALIGN = 64;
/** NumPy leaves room for dim 0 to grow to this many digits without rewriting the header. */
const GROWTH_AXIS_MAX_DIGITS = 21;

/**
 * Bytes to read from the start of a file to learn its header length. Version 1 stores that
 * length in bytes 8-9 but versions 2 and 3 in bytes 8-11, so 12 covers every version; any
 * valid file is longer (its header alone is at least 64 bytes).
 */
export const NPY_PREFIX_BYTES = 12;

export interface NpyHeader {
  dtype: DType;
  shape: number[];
  /** Always false: Fortran-ordered arrays are rejected unless their layout equals C order. */
  fortranOrder: false;
  /** Offset of the first data byte (magic, version, length field and header dict together). */
  headerBytes: number;
  /** Format major version (1, 2 or 3); the minor version is always 0. */
  version: 1 | 2 | 3;
}

const DESCR: Record<DType, string> = {
  float32: "<f4",
  float16: "<f2",
  float64: "<f8",
  int8: "|i1",
  uint8: "|u1",
  int32: "<i4",
  int64: "<i8",
  bool: "|b1",
};

const BY_CODE: Record<string, DType> = {
  f4: "float32",
  f2: "float16",
  f8: "float64",
  i1: "int8",
  u1: "uint8",
  i4: "int32",
  i8: "int64",
  b1: "bool",
};

/** What to convert an unsupported integer or float dtype to, in NumPy terms. */
const SUGGEST: Record<string, string> = {
  i2: "<i4",
  u2: "<i4",
  u4: "<i8",
  u8: "<i8",
  f16: "<f8",
};

const SUPPORTED = "float32 '<f4', float16 '<f2', float64 '<f8', int8 '|i1', uint8 '|u1', int32 '<i4', int64 '<i8', bool '|b1'";

function npyError(message: string, cause?: unknown): EdgepoolError {
  return new EdgepoolError("E_NPY", message, cause === undefined ? undefined : { cause });
}

/** Maps a NumPy descr string to a DType; throws E_NPY naming the problem and the fix. */
function dtypeOfDescr(descr: string): DType {
  const m = /^([<>=|]?)([a-zA-Z])(\d*)$/.exec(descr);
  if (!m) {
    throw npyError(
      `dtype '${descr}' is not supported (only plain numeric dtypes are: ${SUPPORTED}); ` +
        `convert with np.ascontiguousarray(x).astype('<f4') or another supported dtype`,
    );
  }
  const order = m[1] ?? "";
  const code = `${m[2] ?? ""}${m[3] ?? ""}`;
  const dtype = BY_CODE[code];
  if (dtype === undefined) {
    const kind = m[2] ?? "";
    const what =
      kind === "U" || kind === "S" || kind === "a"
        ? "a string dtype"
        : kind === "O"
          ? "an object dtype"
          : kind === "c"
            ? "a complex dtype"
            : kind === "M" || kind === "m"
              ? "a datetime dtype"
              : kind === "V"
                ? "a void/structured dtype"
                : "not a supported dtype";
    const to = SUGGEST[code] ?? "<f4";
    throw npyError(
      `dtype '${descr}' is ${what}; supported: ${SUPPORTED}. Convert with np.ascontiguousarray(x).astype('${to}')`,
    );
  }
  const size = bytesPerElement(dtype);
  // Byte order means nothing for one-byte types; NumPy writes '|' but any marker is harmless.
  if (size > 1 && order === ">") {
    throw npyError(
      `dtype '${descr}' is big-endian; only little-endian data is read. ` +
        `Convert with np.ascontiguousarray(x).astype('${DESCR[dtype]}')`,
    );
  }
  if (size > 1 && order === "|") {
    throw npyError(`dtype '${descr}' has no byte order ('|') although it is ${size} bytes wide; save it as '${DESCR[dtype]}'`);
  }
  return dtype;
}

/** Bytes as latin1 text (one char per byte); TextDecoder's "latin1" is really windows-1252. */
function latin1(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 4096) out += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return out;
}

/**
 * A small parser for the Python literals a .npy header uses: dicts, tuples, lists, quoted
 * strings, integers (with Python 2's "L" suffix), True, False and None. Tuples and lists
 * become arrays, dicts plain objects. Never eval: the header comes from an untrusted file.
 */
function parsePyLiteral(text: string): unknown {
  let i = 0;
  const MAX_DEPTH = 32;
  const fail = (what: string): never => {
    throw new Error(`${what} at character ${i}`);
  };
  const skip = (): void => {
    while (i < text.length && " \t\r\n".includes(text[i]!)) i++;
  };
  const seq = (close: string, depth: number): unknown[] => {
    const items: unknown[] = [];
    for (;;) {
      skip();
      if (text[i] === close) {
        i++;
        return items;
      }
      items.push(value(depth + 1));
      skip();
      if (text[i] === ",") i++;
      else if (text[i] !== close) fail(`expected ',' or '${close}'`);
    }
  };
  const str = (): string => {
    const quote = text[i++];
    let out = "";
    while (i < text.length && text[i] !== quote) {
      const c = text[i++]!;
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = text[i++];
      if (e === undefined) break;
      out += e === "n" ? "\n" : e === "t" ? "\t" : e === "r" ? "\r" : e === "0" ? "\0" : e;
    }
    if (i >= text.length) fail("unterminated string");
    i++;
    return out;
  };
  const value = (depth: number): unknown => {
    if (depth > MAX_DEPTH) fail("nesting too deep");
    skip();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: Record<string, unknown> = {};
      for (;;) {
        skip();
        if (text[i] === "}") {
          i++;
          return obj;
        }
        const key = value(depth + 1);
        if (typeof key !== "string") fail("dict key is not a string");
        skip();
        if (text[i++] !== ":") fail("expected ':'");
        Object.defineProperty(obj, key as string, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
        skip();
        if (text[i] === ",") i++;
        else if (text[i] !== "}") fail("expected ',' or '}'");
      }
    }
    if (c === "(") {
      i++;
      return seq(")", depth);
    }
    if (c === "[") {
      i++;
      return seq("]", depth);
    }
    if (c === "'" || c === '"') return str();
    const word = /^[-+]?\w+/.exec(text.slice(i, i + 64))?.[0];
    if (word === undefined) return fail(`unexpected ${c === undefined ? "end of text" : `'${c}'`}`);
    i += word.length;
    if (word === "True") return true;
    if (word === "False") return false;
    if (word === "None") return null;
    const int = /^([-+]?\d+)[lL]?$/.exec(word);
    if (!int) return fail(`unexpected '${word}'`);
    const n = Number(int[1]);
    if (!Number.isSafeInteger(n)) fail(`integer ${word} is too large`);
    return n;
  };
  const result = value(0);
  skip();
  if (i < text.length) fail("unexpected text after the literal");
  return result;
}

/** True when `bytes` starts with the .npy magic string (0x93 then "NUMPY"). */
export function hasNpyMagic(bytes: Uint8Array): boolean {
  return MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Offset of the first data byte, from the first NPY_PREFIX_BYTES of a file (a v1 file needs
 * only 10). Throws E_NPY when the bytes are not an .npy prefix.
 */
export function npyHeaderLength(prefix: Uint8Array): number {
  if (prefix.byteLength < MAGIC.length || !hasNpyMagic(prefix)) {
    throw npyError("not a NumPy .npy file (magic bytes missing); save arrays with np.save(path, x)");
  }
  const major = prefix[6];
  const minor = prefix[7];
  if (major === undefined || minor === undefined) throw npyError("truncated .npy file: the version bytes are missing");
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) {
    throw npyError(`.npy format version ${major}.${minor} is not supported (1.0, 2.0 and 3.0 are); save with np.save`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  if (major === 1) {
    if (prefix.byteLength < 10) throw npyError("truncated .npy file: the header length is missing");
    return 10 + view.getUint16(8, true);
  }
  if (prefix.byteLength < 12) throw npyError("truncated .npy file: the header length is missing");
  return 12 + view.getUint32(8, true);
}

const HeaderDict = z.object({
  descr: z.unknown(),
  fortran_order: z.boolean(),
  shape: z.array(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)),
});

/** Parses the header at the start of `bytes`, which must hold at least the whole header. */
export function parseNpyHeader(bytes: Uint8Array): NpyHeader {
  const headerBytes = npyHeaderLength(bytes);
  if (bytes.byteLength < headerBytes) {
    throw npyError(`truncated .npy file: the header needs ${headerBytes} bytes but only ${bytes.byteLength} are there`);
  }
  const version = bytes[6] as 1 | 2 | 3;
  const start = version === 1 ? 10 : 12;
  const raw = bytes.subarray(start, headerBytes);
  // v1/v2 headers are latin1 (a byte per char); v3 allows utf-8 for structured field names.
  const text = version === 3 ? new TextDecoder("utf-8").decode(raw) : latin1(raw);

  let literal: unknown;
  try {
    literal = parsePyLiteral(text);
  } catch (err) {
    throw npyError(`the .npy header is not a valid Python dict literal (${(err as Error).message}); re-save with np.save`, err);
  }
  const parsed = HeaderDict.safeParse(literal);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `'${issue.path.join(".")}': ${issue.message}` : "bad header";
    throw npyError(`the .npy header needs 'descr', 'fortran_order' and a 'shape' of non-negative ints (${where}); re-save with np.save`);
  }
  const { descr, fortran_order: fortranOrder, shape } = parsed.data;
  if (typeof descr !== "string") {
    throw npyError("the .npy file holds a structured array (descr is a list of fields); save each field as its own plain array");
  }
  const dtype = dtypeOfDescr(descr);
  // With at most one dim above 1, Fortran and C order lay out the same bytes.
  if (fortranOrder && shape.filter((d) => d > 1).length > 1) {
    throw npyError(
      `the array is in Fortran order (column-major), which is not read; convert with np.ascontiguousarray(x) before np.save`,
    );
  }
  const dataBytes = elementCount(shape) * bytesPerElement(dtype);
  if (!Number.isSafeInteger(dataBytes)) throw npyError(`shape (${shape.join(", ")}) is too large to address`);
  return { dtype, shape, fortranOrder: false, headerBytes, version };
}

function pyShape(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

/** The header for a C-order little-endian array, byte for byte as NumPy's np.save writes it. */
export function encodeNpyHeader(dtype: DType, shape: readonly number[]): Uint8Array {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new EdgepoolError("E_SHAPE", `cannot write .npy shape [${shape.join(",")}]: dims must be non-negative integers`);
    }
  }
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${pyShape(shape)}, }`;
  if (shape.length > 0) dict += " ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  // As NumPy: the newline counts, and an exact fit still gets a full ALIGN of padding.
  const hlen = dict.length + 1;
  const padV1 = ALIGN - ((10 + hlen) % ALIGN);
  const version = hlen + padV1 <= 0xffff ? 1 : 2;
  const pre = version === 1 ? 10 : 12;
  const pad = version === 1 ? padV1 : ALIGN - ((pre + hlen) % ALIGN);
  const total = pre + hlen + pad;
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, total - pre, true);
  else view.setUint32(8, total - pre, true);
  for (let i = 0; i < dict.length; i++) out[pre + i] = dict.charCodeAt(i);
  out.fill(0x20, pre + dict.length, total - 1);
  out[total - 1] = 0x0a;
  return out;
}

/** Bytes of data that follow a header. */
export function npyDataBytes(header: Pick<NpyHeader, "dtype" | "shape">): number {
  return elementCount(header.shape) * bytesPerElement(header.dtype);
}

/** A whole .npy file in one allocation. */
export function encodeNpy(t: Tensor): Uint8Array {
  checkTensor(t, "encodeNpy");
  const header = encodeNpyHeader(t.dtype, t.dims);
  const data = tensorBytes(t);
  const out = new Uint8Array(header.byteLength + data.byteLength);
  out.set(header, 0);
  out.set(data, header.byteLength);
  return out;
}

/** Decodes a whole .npy file; the tensor views `bytes` unless the data is misaligned for its dtype. */
export function decodeNpy(bytes: Uint8Array): Tensor {
  const h = parseNpyHeader(bytes);
  const want = npyDataBytes(h);
  const have = bytes.byteLength - h.headerBytes;
  if (have !== want) {
    throw npyError(
      have < want
        ? `truncated .npy file: shape (${h.shape.join(", ")}) ${h.dtype} needs ${want} data bytes but only ${have} are there`
        : `.npy file has ${have - want} bytes after the data of shape (${h.shape.join(", ")}) ${h.dtype}; it is corrupt or not one array`,
    );
  }
  const count = elementCount(h.shape);
  const offset = bytes.byteOffset + h.headerBytes;
  if (offset % bytesPerElement(h.dtype) === 0) {
    return { dtype: h.dtype, dims: h.shape, data: viewOf(h.dtype, bytes.buffer, offset, count) };
  }
  const copy = bytes.slice(h.headerBytes);
  return { dtype: h.dtype, dims: h.shape, data: viewOf(h.dtype, copy.buffer, 0, count) };
}
