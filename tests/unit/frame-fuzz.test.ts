/**
 * Everything a peer can send is decoded without an escape: thousands of random and mutated
 * frames, JSON messages and ONNX models, each either decoded (within the frame's bounds) or
 * refused with an EdgepoolError of the expected code. Seeded; the seed is printed.
 */
import { describe, expect, it } from "vitest";
import { CATALOG } from "../../shared/onnx/catalog.js";
import { EdgepoolError, httpStatusFor, isErrorCode } from "../../shared/errors.js";
import { countFlops } from "../../shared/onnx/flops.js";
import { decodeFrame, encodeFrame, MAX_HEADER_BYTES, type NamedTensor } from "../../shared/protocol/frame.js";
import { safeFileName } from "../../shared/tensor/job-inputs.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import { PROTOCOL_VERSION, parseCoordinatorText, parseResultFrame, parseShardFrame, parseWorkerText } from "../../shared/protocol/messages.js";
import { DTYPES, bytesPerElement, elementCount, type DType } from "../../shared/tensor/tensor.js";
import { Rng, fuzzSeed, mutateBytes, mutateJson } from "../harness/fuzz.js";

const SEED = fuzzSeed();
console.log(`frame fuzz seed ${SEED} (rerun with EDGEPOOL_FUZZ_SEED=${SEED})`);

const SHA = "b".repeat(64);

/** "ok" when `fn` returned, the code of an EdgepoolError, or a description of anything else thrown. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    if (err instanceof EdgepoolError) return err.code;
    return `ESCAPED ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
  }
}

function tensor(rng: Rng): NamedTensor {
  const dtype: DType = rng.pick(DTYPES);
  const dims = Array.from({ length: rng.int(4) }, () => rng.int(5));
  const n = elementCount(dims);
  const bytes = rng.bytes(n * bytesPerElement(dtype));
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  const data =
    dtype === "float32" ? new Float32Array(buf) : dtype === "float64" ? new Float64Array(buf) : dtype === "float16" ? new Uint16Array(buf)
    : dtype === "int32" ? new Int32Array(buf) : dtype === "int64" ? new BigInt64Array(buf) : dtype === "int8" ? new Int8Array(buf) : new Uint8Array(buf);
  return { name: `t${rng.int(1000)}`, dtype, dims, data };
}

function validFrame(rng: Rng): Uint8Array {
  const tensors = Array.from({ length: rng.int(4) }, () => tensor(rng));
  const header = rng.chance(0.5)
    ? { type: "result", shardId: `j_${rng.int(1e6)}.1.2`, jobId: "j_0123456789abcdef", computeMs: rng.int(1000), throttleMs: 0 }
    : { type: "shard", shardId: `s${rng.int(1e6)}`, jobId: "j1", model: SHA, start: 0, end: 1 + rng.int(10) };
  return encodeFrame(header, tensors);
}

/** A frame whose header is `header` verbatim (any JSON, or raw bytes), followed by `tail` bytes. */
function rawFrame(header: string | Uint8Array, tail: number, claimedLength?: number): Uint8Array {
  const json = typeof header === "string" ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(((4 + json.byteLength + 7) & ~7) + tail);
  new DataView(out.buffer).setUint32(0, claimedLength ?? json.byteLength, true);
  out.set(json, 4);
  return out;
}

/** Checks a decoded frame never points outside its own bytes. */
function checkBounds(input: Uint8Array): void {
  const { tensors } = decodeFrame(input);
  for (const t of tensors) {
    expect(t.data.length).toBe(elementCount(t.dims));
    expect(t.data.byteOffset + t.data.byteLength).toBeLessThanOrEqual(t.data.buffer.byteLength);
    expect(t.data.byteLength).toBeLessThanOrEqual(input.byteLength);
  }
}

describe("frame decoding under fuzz", () => {
  it("refuses each malformed-frame edge case with E_PROTOCOL", () => {
    const entry = (e: Record<string, unknown>) => JSON.stringify({ type: "result", shardId: "s", jobId: "j", computeMs: 1, tensors: [{ name: "a", dtype: "float32", dims: [2], offset: 8, length: 8, ...e }] });
    const cases: Array<[string, Uint8Array]> = [
      ["empty", new Uint8Array(0)],
      ["3 bytes", new Uint8Array(3)],
      ["header length 0xffffffff", rawFrame("{}", 0, 0xffffffff)],
      ["header length over the maximum", rawFrame("{}", 0, MAX_HEADER_BYTES + 1)],
      ["header length past the end", rawFrame("{}", 0, 1000)],
      ["header not JSON", rawFrame("{not json", 8)],
      ["header invalid UTF-8", rawFrame(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 8)],
      ["header an array", rawFrame("[1,2,3]", 8)],
      ["header null", rawFrame("null", 8)],
      ["header a number", rawFrame("42", 8)],
      ["tensors not an array", rawFrame(JSON.stringify({ tensors: { a: 1 } }), 8)],
      ["negative dims", rawFrame(entry({ dims: [-2], length: -8 }), 64)],
      ["negative dim with a matching product", rawFrame(entry({ dims: [-1, -2], length: 8 }), 64)],
      ["fractional dims", rawFrame(entry({ dims: [0.5], length: 2 }), 64)],
      ["dims whose product does not match the length", rawFrame(entry({ dims: [3] }), 64)],
      ["dims product overflowing", rawFrame(entry({ dims: [2 ** 30, 2 ** 30, 2 ** 30], length: 2 ** 52 }), 64)],
      ["17 dims", rawFrame(entry({ dims: Array(17).fill(1), length: 4 }), 64)],
      ["offset past the end", rawFrame(entry({ offset: 4096 }), 64)],
      ["offset inside the header", rawFrame(entry({ offset: 0 }), 64)],
      ["offset unaligned", rawFrame(entry({ offset: 12 }), 64)],
      ["negative offset", rawFrame(entry({ offset: -8 }), 64)],
      ["offset plus length past the end", rawFrame(entry({ dims: [2 ** 40], length: 2 ** 42 }), 64)],
      ["offset beyond 2^53", rawFrame(entry({ offset: 2 ** 60 }), 64)],
      ["unknown dtype", rawFrame(entry({ dtype: "complex128" }), 64)],
      ["string length", rawFrame(entry({ length: "8" }), 64)],
      ["257 tensors", rawFrame(JSON.stringify({ tensors: Array.from({ length: 257 }, () => ({ name: "a", dtype: "uint8", dims: [0], offset: 8, length: 0 })) }), 8)],
    ];
    for (const [what, bytes] of cases) {
      expect(`${what}: ${outcome(() => decodeFrame(bytes))}`).toBe(`${what}: E_PROTOCOL`);
      expect(`${what}: ${outcome(() => parseResultFrame(bytes))}`).toBe(`${what}: E_PROTOCOL`);
    }
  });

  it("decodes or refuses with E_PROTOCOL 5,000 random and mutated frames, never reading outside them", () => {
    const rng = new Rng(SEED);
    const seen = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const kind = rng.int(4);
      let bytes: Uint8Array;
      if (kind === 0) bytes = rng.bytes(rng.int(256));
      else if (kind === 1) bytes = mutateBytes(rng, validFrame(rng));
      else {
        // A valid frame whose JSON header was mutated as a value, then re-encoded.
        const frame = validFrame(rng);
        const len = new DataView(frame.buffer, frame.byteOffset).getUint32(0, true);
        const header = JSON.parse(new TextDecoder().decode(frame.subarray(4, 4 + len))) as unknown;
        bytes = rawFrame(JSON.stringify(mutateJson(rng, header)) ?? "null", frame.byteLength);
        if (kind === 3) bytes = Uint8Array.prototype.slice.call(Buffer.concat([Buffer.alloc(rng.int(8)), bytes]), rng.int(8));
      }
      for (const fn of [() => decodeFrame(bytes), () => parseResultFrame(bytes), () => parseShardFrame(bytes)]) {
        const r = outcome(fn);
        seen.set(r, (seen.get(r) ?? 0) + 1);
        expect(r === "ok" || r === "E_PROTOCOL", `case ${i} (seed ${SEED}): ${r}`).toBe(true);
      }
      if (outcome(() => decodeFrame(bytes)) === "ok") checkBounds(bytes);
    }
    // The fuzzer reached both sides: some frames decoded, many were refused.
    expect(seen.get("ok") ?? 0).toBeGreaterThan(100);
    expect(seen.get("E_PROTOCOL") ?? 0).toBeGreaterThan(1000);
  });
});

describe("JSON messages under fuzz", () => {
  const templates: unknown[] = [
    { type: "hello", protocol: PROTOCOL_VERSION, workerId: "w-1", name: "box", platform: "linux", arch: "x64", cpus: 2, memoryBytes: 1e9, runtime: { name: "onnxruntime-node", version: "1.30.0" }, threads: 1, slots: 1 },
    { type: "shard_error", shardId: "s1", jobId: "j1", code: "E_INFERENCE", message: "boom" },
    { type: "draining", released: ["s1", "s2"] },
    { type: "welcome", protocol: PROTOCOL_VERSION, workerId: "w-1", modelPath: "/models" },
    { type: "cancel", shardId: "s1", reason: "withdrawn" },
    { type: "error", code: "E_PROTOCOL", message: "bad" },
  ];

  it("parses or refuses with E_PROTOCOL 4,000 mutated and random messages, both directions", () => {
    const rng = new Rng(SEED ^ 0x5bd1e995);
    let refused = 0;
    for (let i = 0; i < 4000; i++) {
      const text = rng.chance(0.1) ? rng.bytes(rng.int(64)).toString("utf8") : rng.chance(0.1) ? "[".repeat(10_000) : JSON.stringify(mutateJson(rng, rng.pick(templates))) ?? "";
      for (const parse of [parseWorkerText, parseCoordinatorText]) {
        const r = outcome(() => parse(text));
        expect(r === "ok" || r === "E_PROTOCOL", `message ${i} (seed ${SEED}): ${r}: ${text.slice(0, 200)}`).toBe(true);
        if (r !== "ok") refused += 1;
      }
    }
    expect(refused).toBeGreaterThan(2000);
  });
});

describe("ONNX models under fuzz", () => {
  it("reads mutated and truncated catalog models or refuses them with a client error (E_MODEL_INVALID, E_DTYPE...)", () => {
    const rng = new Rng(SEED ^ 0x27d4eb2d);
    const seen = new Map<string, number>();
    for (const m of CATALOG) {
      const good = m.build();
      for (let i = 0; i < 60; i++) {
        const bytes = i % 3 === 0 ? good.subarray(0, rng.int(good.byteLength)) : mutateBytes(rng, good);
        for (const fn of [() => readModelInfo(bytes), () => countFlops(bytes)]) {
          const r = outcome(fn);
          seen.set(r, (seen.get(r) ?? 0) + 1);
          // What an upload would answer: a 4xx with a message, never a 500.
          const clientError = isErrorCode(r) && httpStatusFor(r) >= 400 && httpStatusFor(r) < 500;
          expect(r === "ok" || clientError, `${m.name} case ${i} (seed ${SEED}): ${r}`).toBe(true);
        }
      }
    }
    expect(seen.get("E_MODEL_INVALID") ?? 0).toBeGreaterThan(50);
  });
});

describe("names from the network", () => {
  it("safeFileName never yields a path, '.', '..' or an empty name", () => {
    const rng = new Rng(SEED ^ 0x165667b1);
    const hostile = ["..", ".", "", "../../etc/passwd", "..\\..\\boot.ini", "a/../../b", "/abs", "%2e%2e", "\u0000", "名前", "....", " .. "];
    for (let i = 0; i < 2000; i++) hostile.push(rng.string());
    for (const name of hostile) {
      const safe = safeFileName(name);
      expect(safe, JSON.stringify(name)).toMatch(/^[A-Za-z0-9._-]+$/);
      expect([".", ".."]).not.toContain(safe);
    }
  });
});
