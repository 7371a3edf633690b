/**
 * Canary shards: rows whose right answers the coordinator knows, because it computed them
 * itself with ONNX Runtime when the job was created. Every worker's first shard of such a job
 * is a canary; its real shards follow only once the canary's answer matches. A worker that
 * answers one wrongly is quarantined before any of its results reach the outputs.
 *
 * `CanaryGate` is the policy for one job: it says what a worker may get next (a canary, its
 * real shards, or nothing while its canary is out) and judges a canary's answer. It returns
 * decisions; the scheduler dispatches and quarantines.
 */
import * as ort from "onnxruntime-node";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import { mulberry32 } from "../../shared/onnx/builder.js";
import { isDType } from "../../shared/tensor/tensor.js";
import { resultsAgree, type Tolerance } from "./verification.js";

export interface Canary {
  /** The job row the canary is (a shard of one row). */
  row: number;
  /** The model's outputs for that row, as computed here. */
  outputs: NamedTensor[];
}

/** Where canary rows come from: a job's id (the seed), its row count, and a reader of its input rows. */
export interface CanaryRows {
  id: string;
  rows: number;
  /** The input rows [start, end) as tensors, in the model's input order. */
  read(start: number, end: number): Promise<NamedTensor[]>;
}

/** Computes known answers for `count` rows of a job, spread over its rows (seeded by its id). */
export async function computeCanaries(source: CanaryRows, modelFile: string, count: number): Promise<Canary[]> {
  const rows = source.rows;
  const random = mulberry32([...source.id].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7));
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
      const inputs = await source.read(row, row + 1);
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

/** What a worker may get from a job with canaries. */
export type CanaryAdmission =
  /** Its canary matched: real shards. */
  | { kind: "open" }
  /** Its canary is out: nothing from this job until it is answered. */
  | { kind: "wait" }
  /** Send it this canary first. */
  | { kind: "canary"; canary: Canary };

/** The verdict on a canary's answer. */
export type CanaryVerdict = { kind: "passed" } | { kind: "failed"; reason: string };

const OPEN: CanaryAdmission = { kind: "open" };
const WAIT: CanaryAdmission = { kind: "wait" };
const PASSED: CanaryVerdict = { kind: "passed" };

/** The canary policy of one job, by persistent worker id (a reconnect does not sit its canary again). */
export class CanaryGate {
  private readonly passed = new Set<string>();
  private readonly out = new Set<string>();

  constructor(
    private readonly jobId: string,
    private readonly canaries: readonly Canary[],
    private readonly tol: Tolerance,
  ) {}

  /** What `workerId` may get next. */
  admit(workerId: string): CanaryAdmission {
    if (this.passed.has(workerId)) return OPEN;
    if (this.out.has(workerId)) return WAIT;
    // Canaries in turn, so that workers joining together do not all sit the same row.
    return { kind: "canary", canary: this.canaries[(this.passed.size + this.out.size) % this.canaries.length]! };
  }

  /** A canary was dispatched to `workerId`. */
  sent(workerId: string): void {
    this.out.add(workerId);
  }

  /** A canary to `workerId` went unanswered (withdrawn): it is simply sent again later. */
  withdrawn(workerId: string): void {
    this.out.delete(workerId);
  }

  /** Judges `workerId`'s answer to `canary`. */
  judge(workerId: string, canary: Canary, tensors: readonly NamedTensor[]): CanaryVerdict {
    this.out.delete(workerId);
    if (resultsAgree(tensors, canary.outputs, this.tol)) {
      this.passed.add(workerId);
      return PASSED;
    }
    return { kind: "failed", reason: `answered canary row ${canary.row} of job ${this.jobId} wrongly` };
  }
}
