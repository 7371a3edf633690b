/**
 * A model run in this process, without a pool: the reference the pool is checked and
 * measured against (demo, benchmarks, tests). One float32 input, run in fixed chunks.
 */
import * as ort from "onnxruntime-node";
import type { Tensor } from "../shared/tensor/tensor.js";

export interface LocalRun {
  /** The model's first output, rows in input order. */
  out: Tensor;
  samplesPerSec: number;
}

export async function runLocally(model: Uint8Array, inputName: string, x: Tensor, opts: { chunk: number; threads: number }): Promise<LocalRun> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: opts.threads, interOpNumThreads: 1, executionProviders: ["cpu"], logSeverityLevel: 3 });
  try {
    const rows = x.dims[0]!;
    const per = x.data.length / rows;
    const parts: Float32Array[] = [];
    let outDims: readonly number[] = [];
    const t0 = performance.now();
    for (let s = 0; s < rows; s += opts.chunk) {
      const e = Math.min(rows, s + opts.chunk);
      const feed = new ort.Tensor("float32", (x.data as Float32Array).subarray(s * per, e * per), [e - s, ...x.dims.slice(1)]);
      const res = await session.run({ [inputName]: feed });
      const o = res[session.outputNames[0]!]!;
      parts.push(o.data as Float32Array);
      outDims = o.dims;
    }
    const secs = (performance.now() - t0) / 1000;
    const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return { out: { dtype: "float32", dims: [rows, ...outDims.slice(1)], data }, samplesPerSec: rows / secs };
  } finally {
    await session.release();
  }
}
