/**
 * Canary shards: rows whose right answers the coordinator knows, because it computed them
 * itself with ONNX Runtime when the job was created. Every worker's first shard of such a job
 * is a canary; its real shards follow only once the canary's answer matches. A worker that
 * answers one wrongly is quarantined before any of its results reach the outputs.
 */
import * as ort from "onnxruntime-node";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import { mulberry32 } from "../../shared/onnx/builder.js";
import { DTYPES, type DType } from "../../shared/tensor/tensor.js";
import type { Job } from "../jobs/job.js";

export interface Canary {
  /** The job row the canary is (a shard of one row). */
  row: number;
  /** The model's outputs for that row, as computed here. */
  outputs: NamedTensor[];
}

function isDType(x: string): x is DType {
  return (DTYPES as readonly string[]).includes(x);
}

/** Computes known answers for `count` rows of `job`, spread over its rows (seeded by its id). */
export async function computeCanaries(job: Job, modelFile: string, count: number): Promise<Canary[]> {
  const rows = job.row.rows;
  const random = mulberry32([...job.id].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7));
  const picked = new Set<number>();
  while (picked.size < Math.min(count, rows)) picked.add(Math.floor(random() * rows));
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelFile, { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
  } catch (err) {
    throw new EdgepoolError("E_MODEL_LOAD", `cannot compute canary answers: the coordinator could not load the model (${toEdgepoolError(err).message})`, { cause: err });
  }
  try {
    const canaries: Canary[] = [];
    for (const row of [...picked].sort((a, b) => a - b)) {
      const inputs = await job.inputRows(row, row + 1);
      const feeds: Record<string, ort.Tensor> = {};
      for (const t of inputs) feeds[t.name] = new ort.Tensor(t.dtype as "float32", t.data as Float32Array, t.dims);
      const result = await session.run(feeds);
      const outputs = session.outputNames.map((name): NamedTensor => {
        const t = result[name] as ort.Tensor;
        if (!isDType(t.type)) throw new EdgepoolError("E_DTYPE", `canary output '${name}' is ${t.type}, which edgepool does not carry`);
        return { name, dtype: t.type, dims: [...t.dims], data: t.data as NamedTensor["data"] };
      });
      canaries.push({ row, outputs });
    }
    return canaries;
  } catch (err) {
    throw new EdgepoolError("E_INFERENCE", `cannot compute canary answers: ${toEdgepoolError(err).message}`, { cause: err });
  } finally {
    await session.release();
  }
}
