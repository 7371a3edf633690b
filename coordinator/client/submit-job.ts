/**
 * The whole of a submission, client side: check the inputs against the model locally (so a
 * wrong name or shape fails before gigabytes are uploaded), upload model and inputs, create
 * the job, wait for it, and save every output as <outDir>/<safe name>.npy.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { EdgepoolError } from "../../shared/errors.js";
import { safeFileName, validateJobInputs } from "../../shared/tensor/job-inputs.js";
import { readNpyFileHeader } from "../../shared/node/npy-file.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import type { CoordinatorClient, JobView } from "./client.js";

export interface SubmitRequest {
  model: Uint8Array;
  /** Input name -> .npy file path. */
  inputs: Record<string, string>;
  outDir: string;
  shardSize?: number;
  /** Workers that compute each shard; their results must agree (1: no verification). */
  redundancy?: number;
  rtol?: number;
  atol?: number;
  /** Rows the coordinator computes itself and checks each worker against first. */
  canaries?: number;
  onJob?: (job: JobView) => void;
  onProgress?: (job: JobView) => void;
  onReconnecting?: (e: EdgepoolError) => void;
  pollMs?: number;
  /** How long to wait for a coordinator that went away mid-job (ms). */
  reconnectMs?: number;
}

export interface SubmitResult {
  job: JobView;
  /** Output name -> file written. */
  files: Record<string, string>;
}

export async function submitJob(client: CoordinatorClient, req: SubmitRequest): Promise<SubmitResult> {
  const info = readModelInfo(req.model);
  const given = [];
  for (const [name, file] of Object.entries(req.inputs)) {
    const h = await readNpyFileHeader(file);
    given.push({ name, dtype: h.dtype, shape: h.shape });
  }
  validateJobInputs(info.inputs, given);
  await client.health();
  const model = await client.uploadModel(req.model);
  const uploads: Record<string, string> = {};
  for (const [name, file] of Object.entries(req.inputs)) uploads[name] = (await client.uploadNpy(file)).id;
  const created = await client.createJob({
    model: model.sha256,
    inputs: uploads,
    ...(req.shardSize ? { shardSize: req.shardSize } : {}),
    ...(req.redundancy ? { redundancy: req.redundancy } : {}),
    ...(req.rtol !== undefined ? { rtol: req.rtol } : {}),
    ...(req.atol !== undefined ? { atol: req.atol } : {}),
    ...(req.canaries ? { canaries: req.canaries } : {}),
  });
  req.onJob?.(created);
  const job = await client.waitForJob(created.id, {
    intervalMs: req.pollMs ?? 100,
    reconnectMs: req.reconnectMs ?? 300_000,
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    ...(req.onReconnecting ? { onReconnecting: req.onReconnecting } : {}),
  });
  if (job.state !== "done") {
    throw new EdgepoolError(job.state === "cancelled" ? "E_CANCELLED" : "E_INFERENCE", `job ${job.id} ${job.state}: ${job.error ?? "no reason given"}`);
  }
  await mkdir(req.outDir, { recursive: true });
  const files: Record<string, string> = {};
  const used = new Set<string>();
  for (const o of job.outputs) {
    let base = safeFileName(o.name);
    for (let k = 2; used.has(base); k++) base = `${safeFileName(o.name)}_${k}`;
    used.add(base);
    const file = path.join(req.outDir, `${base}.npy`);
    await client.retrying(() => client.downloadOutput(job.id, o.name, file), req.reconnectMs ?? 300_000, req.onReconnecting);
    files[o.name] = file;
  }
  return { job, files };
}
