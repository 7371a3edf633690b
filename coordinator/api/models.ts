/** A model as the API shows it (POST /api/models, GET /api/models/<sha256>): one schema for server and client. */
import { z } from "zod";
import { IoInfoSchema } from "../../shared/onnx/model-info.js";
import type { ModelRow } from "../jobs/job-db.js";

export const ModelViewSchema = z.object({
  sha256: z.string(),
  bytes: z.number(),
  inputs: z.array(IoInfoSchema),
  outputs: z.array(IoInfoSchema),
  /** The model's default-domain opset. */
  opset: z.number(),
  /** The model only accepts a batch of one: workers run it sample by sample. */
  fixedBatch: z.boolean(),
  flopsPerSample: z.number(),
});
export type ModelView = z.infer<typeof ModelViewSchema>;

/** The public view of a stored model. */
export function modelView(m: ModelRow): ModelView {
  const { inputs, outputs, opset, fixedBatch, flopsPerSample } = m.info;
  return { sha256: m.sha256, bytes: m.bytes, inputs, outputs, opset, fixedBatch, flopsPerSample };
}
