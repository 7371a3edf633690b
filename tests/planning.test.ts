import { describe, expect, it } from "vitest";
import { MAX_SHARD_BYTES, defaultShardSize, planShards } from "../coordinator/planner.js";
import { Throughput } from "../coordinator/throughput.js";
import { EdgepoolError } from "../shared/errors.js";
import { safeFileName, validateJobInputs } from "../shared/job-inputs.js";

describe("shard planner", () => {
  it("covers [0, N) contiguously, in order, with the last shard short", () => {
    expect(planShards(10, 4)).toEqual([[0, 4], [4, 8], [8, 10]]);
    expect(planShards(1, 50)).toEqual([[0, 1]]);
    const big = planShards(100_003, 1000);
    expect(big).toHaveLength(101);
    expect(big.every(([s, e], i) => e > s && (i === 0 ? s === 0 : s === big[i - 1]![1]))).toBe(true);
    expect(big[big.length - 1]![1]).toBe(100_003);
  });

  it("sizes default shards to about N/64 rows, capped by bytes", () => {
    expect(defaultShardSize(6400, 1024)).toBe(100);
    expect(defaultShardSize(10, 1024)).toBe(1);
    expect(defaultShardSize(1_000_000, 1024 * 1024)).toBe(Math.floor(MAX_SHARD_BYTES / (1024 * 1024)));
  });

  it("refuses empty jobs and bad sizes", () => {
    expect(() => planShards(0, 4)).toThrow(EdgepoolError);
    expect(() => planShards(10, 0)).toThrow(EdgepoolError);
  });
});

describe("job input validation", () => {
  const model = [
    { name: "ids", dtype: "int64" as const, shape: ["batch", 16] },
    { name: "mask", dtype: "int64" as const, shape: ["batch", 16] },
  ];
  const code = (fn: () => unknown) => {
    try {
      fn();
      return "none";
    } catch (e) {
      return (e as EdgepoolError).code;
    }
  };

  it("returns the shared batch size", () => {
    expect(validateJobInputs(model, [{ name: "ids", dtype: "int64", shape: [7, 16] }, { name: "mask", dtype: "int64", shape: [7, 16] }])).toBe(7);
  });

  it("accepts any batch for a model whose batch is fixed at 1", () => {
    expect(validateJobInputs([{ name: "x", dtype: "float32", shape: [1, 3] }], [{ name: "x", dtype: "float32", shape: [8, 3] }])).toBe(8);
  });

  it("names what is wrong", () => {
    expect(code(() => validateJobInputs(model, [{ name: "ids", dtype: "int64", shape: [7, 16] }]))).toBe("E_BAD_REQUEST");
    expect(code(() => validateJobInputs(model, [{ name: "ids", dtype: "int32", shape: [7, 16] }, { name: "mask", dtype: "int64", shape: [7, 16] }]))).toBe("E_DTYPE");
    expect(code(() => validateJobInputs(model, [{ name: "ids", dtype: "int64", shape: [7, 15] }, { name: "mask", dtype: "int64", shape: [7, 16] }]))).toBe("E_SHAPE");
    expect(code(() => validateJobInputs(model, [{ name: "ids", dtype: "int64", shape: [7, 16] }, { name: "mask", dtype: "int64", shape: [6, 16] }]))).toBe("E_SHAPE");
    expect(code(() => validateJobInputs(model, [{ name: "ids", dtype: "int64", shape: [0, 16] }, { name: "mask", dtype: "int64", shape: [0, 16] }]))).toBe("E_SHAPE");
  });

  it("makes safe file names", () => {
    expect(safeFileName("gpu_0/softmax:0")).toBe("gpu_0_softmax_0");
    expect(safeFileName("..")).toBe("_..");
    expect(safeFileName("ok-name.v1")).toBe("ok-name.v1");
  });
});

describe("throughput window", () => {
  it("reports rates over whole seconds of the window", () => {
    let now = 1_000_000;
    const t = new Throughput(10, () => now);
    for (let i = 0; i < 10; i++) {
      t.record(100, 1e9);
      now += 1000;
    }
    const r = t.rates();
    expect(r.samplesPerSec).toBe(100);
    expect(r.shardsPerSec).toBe(1);
    expect(r.gflopsPerSec).toBe(1);
    expect(t.total.samples).toBe(1000);
    now += 60_000;
    t.record(50, 0);
    now += 1000;
    t.record(50, 0);
    now += 1000;
    // Two seconds of work in a ten-second window: rated over those two seconds.
    expect(t.rates().samplesPerSec).toBe(50);
    now += 60_000;
    expect(t.rates().samplesPerSec).toBe(0);
    expect(t.active()).toBe(false);
  });
});
