/** Reference outputs: the same model run in this process with ONNX Runtime, in fixed chunks. */
import * as ort from "onnxruntime-node";
import type { Tensor } from "../../shared/tensor.js";

/** Runs a one-input float32 model over `x` in chunks of `chunk` rows; returns the first output. */
export async function referenceRun(model: Uint8Array, inputName: string, x: Tensor, chunk: number): Promise<Tensor> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const rows = x.dims[0]!;
    const per = x.data.length / rows;
    const parts: Float32Array[] = [];
    let outDims: readonly number[] = [];
    for (let s = 0; s < rows; s += chunk) {
      const e = Math.min(rows, s + chunk);
      const res = await session.run({ [inputName]: new ort.Tensor("float32", (x.data as Float32Array).subarray(s * per, e * per), [e - s, ...x.dims.slice(1)]) });
      const out = res[session.outputNames[0]!]!;
      parts.push(out.data as Float32Array);
      outDims = out.dims;
    }
    const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return { dtype: "float32", dims: [rows, ...outDims.slice(1)], data };
  } finally {
    await session.release();
  }
}
