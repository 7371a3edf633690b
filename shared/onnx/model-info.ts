/**
 * A model's signature (named inputs and outputs with dtypes and shapes), its default-domain
 * opset, and whether it only accepts a batch of one. Read from ONNX bytes without running
 * the model, so the coordinator can validate jobs before any worker loads it.
 */
import { z } from "zod";
import { EdgepoolError } from "../errors.js";
import { DTYPES, type DType } from "../tensor/tensor.js";
import { type ValueInfoProto, decodeModel, dtypeFromOnnx } from "./proto.js";

export const IoInfoSchema = z.object({
  name: z.string().min(1),
  dtype: z.enum(DTYPES),
  /** A number for a fixed dim, the symbol's name for a symbolic one, "?" when unnamed. */
  shape: z.array(z.union([z.number().int().nonnegative(), z.string().min(1)])),
});
export type IoInfo = z.infer<typeof IoInfoSchema>;

export const ModelInfoSchema = z.object({
  inputs: z.array(IoInfoSchema),
  outputs: z.array(IoInfoSchema),
  opset: z.number().int().nonnegative(),
  fixedBatch: z.boolean(),
});
export type ModelInfo = z.infer<typeof ModelInfoSchema>;

function ioInfo(vi: ValueInfoProto, role: "input" | "output"): IoInfo {
  const tt = vi.type?.tensorType;
  if (tt === undefined) {
    throw new EdgepoolError(
      "E_DTYPE",
      `model ${role} "${vi.name}" is not a tensor (sequence, map or untyped); edgepool only serves tensor ${role}s`,
    );
  }
  const dtype: DType | undefined = dtypeFromOnnx(tt.elemType);
  if (dtype === undefined) {
    throw new EdgepoolError(
      "E_DTYPE",
      `model ${role} "${vi.name}" has ONNX element type ${tt.elemType}, which edgepool does not support; ` +
        `export the model with ${role}s of type ${DTYPES.join(", ")}`,
    );
  }
  const shape = (tt.shape?.dim ?? []).map((d) => {
    if (d.dimValue !== undefined) return d.dimValue;
    if (d.dimParam !== undefined && d.dimParam !== "") return d.dimParam;
    return "?";
  });
  return { name: vi.name, dtype, shape };
}

/** Reads the signature of an ONNX model; throws E_MODEL_INVALID or E_DTYPE. */
export function readModelInfo(bytes: Uint8Array): ModelInfo {
  const model = decodeModel(bytes);
  const graph = model.graph;
  // Older exporters list every weight as a graph input too; those have a value already and
  // are not something a caller feeds.
  const initialized = new Set(graph.initializer.map((t) => t.name));
  const inputs = graph.input.filter((vi) => !initialized.has(vi.name)).map((vi) => ioInfo(vi, "input"));
  const outputs = graph.output.map((vi) => ioInfo(vi, "output"));
  const opset = model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 0;
  const fixedBatch = inputs.length > 0 && inputs.every((i) => i.shape[0] === 1);
  return { inputs, outputs, opset, fixedBatch };
}
