/** Result verification: element-wise agreement within tolerance, and majority verdicts over replicas. */
import { describe, expect, it } from "vitest";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import { Replicas, resultsAgree } from "../../coordinator/scheduling/verification.js";
import { maybeCorrupt, FaultInjectSchema } from "../../worker/fault-inject.js";
import { encodeFrame } from "../../shared/protocol/frame.js";
import { parseResultFrame } from "../../shared/protocol/messages.js";

const TOL = { rtol: 1e-4, atol: 1e-5 };
const f32 = (name: string, xs: number[]): NamedTensor => ({ name, dtype: "float32", dims: [xs.length], data: Float32Array.from(xs) });
const w = (id: string) => ({ id });

describe("resultsAgree", () => {
  it("accepts float differences within atol + rtol*|b| and refuses larger ones", () => {
    expect(resultsAgree([f32("y", [1, 100])], [f32("y", [1 + 1e-5, 100 + 5e-3])], TOL)).toBe(true);
    expect(resultsAgree([f32("y", [1, 100])], [f32("y", [1, 100.02])], TOL)).toBe(false);
    expect(resultsAgree([f32("y", [0])], [f32("y", [2e-5])], TOL)).toBe(false);
  });

  it("treats NaN as equal only to NaN, and compares integers exactly", () => {
    expect(resultsAgree([f32("y", [Number.NaN])], [f32("y", [Number.NaN])], TOL)).toBe(true);
    expect(resultsAgree([f32("y", [Number.NaN])], [f32("y", [0])], TOL)).toBe(false);
    const i64 = (v: bigint): NamedTensor => ({ name: "ids", dtype: "int64", dims: [1], data: BigInt64Array.of(v) });
    expect(resultsAgree([i64(7n)], [i64(7n)], TOL)).toBe(true);
    expect(resultsAgree([i64(7n)], [i64(8n)], TOL)).toBe(false);
  });

  it("refuses different names, dtypes or shapes", () => {
    expect(resultsAgree([f32("y", [1, 2])], [f32("z", [1, 2])], TOL)).toBe(false);
    expect(resultsAgree([f32("y", [1, 2])], [{ ...f32("y", [1, 2]), dims: [2, 1] }], TOL)).toBe(false);
    expect(resultsAgree([f32("y", [1, 2])], [f32("y", [1, 2]), f32("z", [1])], TOL)).toBe(false);
  });
});

describe("Replicas", () => {
  it("with redundancy 2, accepts two agreeing answers", () => {
    const r = new Replicas(2, 5, TOL);
    expect(r.add(w("a"), [f32("y", [1])])).toEqual({ kind: "pending", wanted: 1 });
    const v = r.add(w("b"), [f32("y", [1])]);
    expect(v.kind).toBe("agreed");
    if (v.kind === "agreed") expect([v.agree.map((x) => x.id), v.disagree]).toEqual([["a", "b"], []]);
  });

  it("asks for one more replica per disagreement and names the odd one out", () => {
    const r = new Replicas(2, 5, TOL);
    r.add(w("bad"), [f32("y", [9])]);
    expect(r.add(w("a"), [f32("y", [1])])).toEqual({ kind: "pending", wanted: 1 });
    const v = r.add(w("b"), [f32("y", [1])]);
    expect(v.kind).toBe("agreed");
    if (v.kind === "agreed") {
      expect(v.agree.map((x) => x.id)).toEqual(["a", "b"]);
      expect(v.disagree.map((x) => x.id)).toEqual(["bad"]);
      expect((v.tensors[0]!.data as Float32Array)[0]).toBe(1);
    }
    expect(r.has("bad")).toBe(true);
    expect(r.has("c")).toBe(false);
  });

  it("gives up after maxReplicas answers with no majority", () => {
    const r = new Replicas(2, 3, TOL);
    r.add(w("a"), [f32("y", [1])]);
    r.add(w("b"), [f32("y", [2])]);
    expect(r.add(w("c"), [f32("y", [3])])).toEqual({ kind: "undecided", groups: 3 });
  });

  it("forgets a dropped worker's answer", () => {
    const r = new Replicas(2, 5, TOL);
    r.add(w("bad"), [f32("y", [9])]);
    r.add(w("a"), [f32("y", [1])]);
    r.drop("bad");
    expect(r.received).toBe(1);
    expect(r.verdict()).toEqual({ kind: "pending", wanted: 1 });
  });
});

describe("fault injection (a test facility)", () => {
  it("parses corrupt:<rate> and refuses anything else", () => {
    expect(FaultInjectSchema.parse("corrupt:0.25")).toEqual({ corrupt: 0.25 });
    expect(() => FaultInjectSchema.parse("corrupt:2")).toThrow(/corrupt:<rate>/);
    expect(() => FaultInjectSchema.parse("explode")).toThrow(/corrupt:<rate>/);
  });

  it("corrupts every output of a chosen result beyond any tolerance, and leaves the rest alone", () => {
    const honest = [f32("y", [1, 2, 3])];
    const frame = encodeFrame({ type: "result", shardId: "s", jobId: "j", computeMs: 1, throttleMs: 0 }, honest);
    expect(maybeCorrupt(frame, { corrupt: 0.5 }, () => 0.9)).toBe(false);
    expect(resultsAgree(parseResultFrame(frame).tensors, honest, TOL)).toBe(true);
    expect(maybeCorrupt(frame, { corrupt: 0.5 }, () => 0.1)).toBe(true);
    const got = parseResultFrame(frame).tensors[0]!.data as Float32Array;
    expect([...got]).toEqual([2.1, 3.1, 4.1].map((x) => Math.fround(x)));
  });
});
