import { describe, expect, it } from "vitest";
import { EdgepoolError } from "../../shared/errors.js";
import { FramePool, decodeFrame, encodeFrame, planFrame } from "../../shared/protocol/frame.js";
import { clientMaskOptions } from "../../shared/node/ws-send.js";
import { PROTOCOL_VERSION, checkProtocolVersion, parseResultFrame, parseShardFrame, parseWorkerText } from "../../shared/protocol/messages.js";

const SHA = "a".repeat(64);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof EdgepoolError ? e.code : "not-an-EdgepoolError";
  }
  return undefined;
}

describe("binary frames", () => {
  it("round-trips mixed dtypes with 8-byte-aligned, zero-copy views", () => {
    const f32 = new Float32Array([1.5, -2, 3.25]);
    const i64 = new BigInt64Array([1n, -2n, 9007199254740993n]);
    const u8 = new Uint8Array([1, 0, 1, 1, 0]);
    const f64 = new Float64Array([Math.PI]);
    const frame = encodeFrame({ type: "x", n: 1 }, [
      { name: "a", dtype: "float32", dims: [3], data: f32 },
      { name: "b", dtype: "bool", dims: [5], data: u8 },
      { name: "c", dtype: "int64", dims: [1, 3], data: i64 },
      { name: "d", dtype: "float64", dims: [1], data: f64 },
    ]);
    const { header, tensors } = decodeFrame(frame);
    expect(header).toEqual({ type: "x", n: 1 });
    expect(tensors.map((t) => t.name)).toEqual(["a", "b", "c", "d"]);
    expect([...(tensors[0]!.data as Float32Array)]).toEqual([1.5, -2, 3.25]);
    expect([...(tensors[1]!.data as Uint8Array)]).toEqual([1, 0, 1, 1, 0]);
    expect([...(tensors[2]!.data as BigInt64Array)]).toEqual([1n, -2n, 9007199254740993n]);
    expect(tensors[2]!.dims).toEqual([1, 3]);
    expect((tensors[3]!.data as Float64Array)[0]).toBe(Math.PI);
    for (const t of tensors) {
      expect(t.data.buffer).toBe(frame.buffer);
      expect(t.data.byteOffset % 8).toBe(0);
    }
  });

  it("copies once when the frame sits at an unaligned offset, and still decodes", () => {
    const frame = encodeFrame({ type: "x" }, [{ name: "a", dtype: "float64", dims: [2], data: new Float64Array([1, 2]) }]);
    const shifted = new Uint8Array(frame.byteLength + 3);
    shifted.set(frame, 3);
    const { tensors } = decodeFrame(shifted.subarray(3));
    expect([...(tensors[0]!.data as Float64Array)]).toEqual([1, 2]);
  });

  it("planFrame hands out writable slots inside the frame", () => {
    const { frame, slots } = planFrame({ type: "x" }, [{ name: "a", dtype: "int32", dims: [2, 2] }]);
    new Int32Array(slots[0]!.buffer, slots[0]!.byteOffset, 4).set([1, 2, 3, 4]);
    expect([...(decodeFrame(frame).tensors[0]!.data as Int32Array)]).toEqual([1, 2, 3, 4]);
  });

  it("refuses malformed frames with E_PROTOCOL and never reads outside the frame", () => {
    const good = encodeFrame({ type: "x" }, [{ name: "a", dtype: "float32", dims: [4], data: new Float32Array(4) }]);
    expect(codeOf(() => decodeFrame(new Uint8Array(2)))).toBe("E_PROTOCOL");
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, 0xffffffff, true);
    expect(codeOf(() => decodeFrame(huge))).toBe("E_PROTOCOL");
    expect(codeOf(() => decodeFrame(good.subarray(0, good.byteLength - 4)))).toBe("E_PROTOCOL");
    const notJson = new Uint8Array(12);
    new DataView(notJson.buffer).setUint32(0, 4, true);
    notJson.set([0x7b, 0x7b, 0x7b, 0x7b], 4);
    expect(codeOf(() => decodeFrame(notJson))).toBe("E_PROTOCOL");
    // A table that lies about a tensor's length.
    const text = new TextEncoder().encode(JSON.stringify({ tensors: [{ name: "a", dtype: "float32", dims: [100], offset: 8, length: 400 }] }));
    const lying = new Uint8Array(4 + text.byteLength + 16);
    new DataView(lying.buffer).setUint32(0, text.byteLength, true);
    lying.set(text, 4);
    expect(codeOf(() => decodeFrame(lying))).toBe("E_PROTOCOL");
  });
});

describe("reused frame buffers", () => {
  it("lays a frame out in a dirty reused buffer exactly as in a fresh one", () => {
    const pool = new FramePool(1 << 24, 1024);
    const specs = [
      { name: "a", dtype: "float32" as const, dims: [3, 1000] },
      { name: "b", dtype: "uint8" as const, dims: [5] },
      { name: "c", dtype: "int32" as const, dims: [1, 300] },
    ];
    const fresh = planFrame({ type: "shard", n: 1 }, specs);
    const first = planFrame({ type: "shard", n: 1 }, specs, pool.take);
    first.frame.fill(0xab);
    pool.give(first.frame);
    const reused = planFrame({ type: "shard", n: 1 }, specs, pool.take);
    expect(reused.frame).toBe(first.frame);
    reused.slots.forEach((slot, i) => slot.set(fresh.slots[i]!.map((_, k) => (k * 7 + i) & 0xff)));
    fresh.slots.forEach((slot, i) => slot.set(fresh.slots[i]!.map((_, k) => (k * 7 + i) & 0xff)));
    // Header, padding and tensors all equal: nothing of the old contents shows through.
    expect(Buffer.from(reused.frame).equals(Buffer.from(fresh.frame))).toBe(true);
    expect(decodeFrame(reused.frame).tensors.map((t) => t.dims)).toEqual([[3, 1000], [5], [1, 300]]);
  });

  it("keeps buffers only up to its limit and only large ones", () => {
    const pool = new FramePool(3000, 1000);
    const a = pool.take(2000);
    const b = pool.take(2000);
    pool.give(a);
    pool.give(b); // over the 3000-byte limit: dropped
    expect(pool.take(2000)).toBe(a);
    expect(pool.take(2000)).not.toBe(b);
    // Given back twice, still handed out once.
    const c = pool.take(1000);
    pool.give(c);
    pool.give(c);
    expect(pool.take(1000)).toBe(c);
    expect(pool.take(1000)).not.toBe(c);
    const small = pool.take(500);
    pool.give(small);
    const next = pool.take(501);
    expect(next).not.toBe(small);
    // Small ones are cut from one slab, 8-byte aligned, side by side and never overlapping.
    expect(next.buffer).toBe(small.buffer);
    expect(small.byteOffset % 8).toBe(0);
    expect(next.byteOffset % 8).toBe(0);
    expect(next.byteOffset).toBeGreaterThanOrEqual(small.byteOffset + small.byteLength);
  });
});

describe("client frame masking", () => {
  it("skips the mask only where no proxy can read the bytes: loopback and TLS", () => {
    const zero = (url: string) => {
      const gen = clientMaskOptions(url).generateMask;
      if (!gen) return false;
      const mask = Buffer.from([1, 2, 3, 4]);
      gen(mask);
      return mask.every((b) => b === 0);
    };
    expect(zero("ws://127.0.0.1:7070")).toBe(true);
    expect(zero("ws://localhost:7070/")).toBe(true);
    expect(zero("ws://[::1]:7070")).toBe(true);
    expect(zero("wss://pool.example.org")).toBe(true);
    expect(zero("ws://192.168.1.20:7070")).toBe(false);
    expect(zero("ws://pool.example.org")).toBe(false);
  });
});

describe("protocol messages", () => {
  const hello = {
    type: "hello", protocol: PROTOCOL_VERSION, workerId: "w-1", name: "box", platform: "linux", arch: "x64",
    cpus: 2, memoryBytes: 1e9, runtime: { name: "onnxruntime-node", version: "1.30.0" }, threads: 1, slots: 1,
  };

  it("parses a hello and fills defaults", () => {
    const m = parseWorkerText(JSON.stringify(hello));
    expect(m.type).toBe("hello");
    if (m.type === "hello") expect(m.virtual).toBe(false);
  });

  it("refuses garbage, unknown types and bad fields with E_PROTOCOL", () => {
    expect(codeOf(() => parseWorkerText("{"))).toBe("E_PROTOCOL");
    expect(codeOf(() => parseWorkerText(JSON.stringify({ type: "nope" })))).toBe("E_PROTOCOL");
    expect(codeOf(() => parseWorkerText(JSON.stringify({ ...hello, slots: 0 })))).toBe("E_PROTOCOL");
    expect(codeOf(() => parseWorkerText("null"))).toBe("E_PROTOCOL");
  });

  it("names both versions on a mismatch", () => {
    expect(() => checkProtocolVersion(PROTOCOL_VERSION + 1, "worker x")).toThrow(
      `worker x speaks protocol version ${PROTOCOL_VERSION + 1} but this side speaks ${PROTOCOL_VERSION}`,
    );
  });

  it("parses shard and result frames and checks their headers", () => {
    const data = new Float32Array(6);
    const shard = encodeFrame({ type: "shard", shardId: "s1", jobId: "j1", model: SHA, start: 4, end: 6 }, [{ name: "x", dtype: "float32", dims: [2, 3], data }]);
    const s = parseShardFrame(shard);
    expect(s.header).toEqual({ type: "shard", shardId: "s1", jobId: "j1", model: SHA, start: 4, end: 6 });
    const result = encodeFrame({ type: "result", shardId: "s1", jobId: "j1", computeMs: 3.5 }, [{ name: "y", dtype: "float32", dims: [2, 3], data }]);
    expect(parseResultFrame(result).header.computeMs).toBe(3.5);
    expect(codeOf(() => parseShardFrame(result))).toBe("E_PROTOCOL");
    const empty = encodeFrame({ type: "shard", shardId: "s1", jobId: "j1", model: SHA, start: 4, end: 4 }, []);
    expect(codeOf(() => parseShardFrame(empty))).toBe("E_PROTOCOL");
  });
});

describe("frames inside Node Buffers", () => {
  it("decodes a frame held in an unaligned Buffer slice (as ws hands them out)", () => {
    const frame = encodeFrame({ type: "x" }, [{ name: "a", dtype: "float32", dims: [3], data: new Float32Array([1, 2, 3]) }]);
    const pool = Buffer.alloc(frame.byteLength + 5);
    pool.set(frame, 5);
    const { tensors } = decodeFrame(pool.subarray(5));
    expect([...(tensors[0]!.data as Float32Array)]).toEqual([1, 2, 3]);
  });
});
