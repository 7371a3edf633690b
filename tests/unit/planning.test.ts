import { describe, expect, it } from "vitest";
import { MAX_SHARD_BYTES, PROBE_FLOPS_PER_SEC, knownOutputRowBytes, shardRows, updateRate } from "../../coordinator/scheduling/planner.js";
import { Throughput } from "../../coordinator/observe/throughput.js";
import { EdgepoolError } from "../../shared/errors.js";
import { safeFileName, validateJobInputs } from "../../shared/tensor/job-inputs.js";

describe("shard sizes", () => {
  const base = { fixed: null, rate: undefined, targetShardMs: 500, flopsPerSample: 1e6, bytesPerRow: 1024, remaining: 100_000, workers: 2 };

  it("follows the worker's measured rate toward the target duration", () => {
    expect(shardRows({ ...base, rate: 2000 })).toBe(1000);
    expect(shardRows({ ...base, rate: 200 })).toBe(100);
    expect(shardRows({ ...base, rate: 0.5 })).toBe(1);
  });

  it("probes an unmeasured worker as if it ran 1 GFLOP/s", () => {
    expect(PROBE_FLOPS_PER_SEC).toBe(1e9);
    expect(shardRows(base)).toBe(500);
    expect(shardRows({ ...base, flopsPerSample: 8.2e9 })).toBe(1);
  });

  it("caps shard bytes and spreads the tail over the pool", () => {
    expect(shardRows({ ...base, rate: 1e9 })).toBe(Math.floor(MAX_SHARD_BYTES / 1024));
    expect(shardRows({ ...base, rate: 1e6, remaining: 101, workers: 4 })).toBe(26);
    expect(shardRows({ ...base, rate: 1e6, remaining: 3, workers: 8 })).toBe(1);
    expect(shardRows({ ...base, remaining: 0 })).toBe(0);
  });

  it("uses a size fixed by the client as given", () => {
    expect(shardRows({ ...base, fixed: 50, rate: 1e6 })).toBe(50);
    expect(shardRows({ ...base, fixed: 50, remaining: 7 })).toBe(7);
  });

  it("smooths rates", () => {
    expect(updateRate(undefined, 100)).toBe(100);
    expect(updateRate(100, 200, 0.5)).toBe(150);
    expect(updateRate(100, Number.NaN)).toBe(100);
  });
});

describe("output row bytes", () => {
  it("counts the outputs whose dims past the batch are known, for shard sizes and the frame check alike", () => {
    const outputs = [
      { dtype: "float32" as const, shape: ["batch", 10] },
      { dtype: "int64" as const, shape: ["batch", 2, 3] },
      { dtype: "float32" as const, shape: ["batch", "seq"] },
    ];
    expect(knownOutputRowBytes(outputs)).toBe(10 * 4 + 6 * 8);
    // An output file's shape has every dim, the rows first.
    expect(knownOutputRowBytes([{ dtype: "float16", shape: [1000, 4] }])).toBe(8);
    expect(knownOutputRowBytes([])).toBe(0);
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

describe("limiter", () => {
  it("runs at most max tasks at once, in order", async () => {
    const { Limiter } = await import("../../shared/limiter.js");
    const l = new Limiter(2);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const task = (i: number) => async () => {
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      order.push(i);
      running -= 1;
      return i;
    };
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => l.run(task(i))));
    expect(results).toEqual([0, 1, 2, 3, 4]);
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });
});
