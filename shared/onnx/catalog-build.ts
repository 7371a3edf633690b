/** What the catalog's model builders share: the build options, the batch dim, seeded inputs and weight scales. */
import { z } from "zod";
import { EdgepoolError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { SeededRandom } from "./builder.js";

export const CatalogBuildOptionsSchema = z.object({
  batch: z.union([z.literal("dynamic"), z.number().int().positive()]).optional(),
});
export type CatalogBuildOptions = z.infer<typeof CatalogBuildOptionsSchema>;


export type BatchDim = number | "batch";

export function batchDim(opts: CatalogBuildOptions | undefined, model: string): BatchDim {
  const parsed = CatalogBuildOptionsSchema.safeParse(opts ?? {});
  if (!parsed.success) {
    throw new EdgepoolError(
      "E_BAD_REQUEST",
      `catalog model "${model}": batch must be "dynamic" or a positive integer (${parsed.error.issues[0]?.message ?? "invalid"})`,
    );
  }
  const b = parsed.data.batch ?? "dynamic";
  return b === "dynamic" ? "batch" : b;
}

export function normalInput(dims: number[], seed: number): Tensor {
  let n = 1;
  for (const d of dims) n *= d;
  return { dtype: "float32", dims, data: new SeededRandom(seed).normalArray(n) };
}

/** He-style scale for a layer followed by ReLU, so activations keep their magnitude. */
export function heStd(fanIn: number): number {
  return Math.sqrt(2 / fanIn);
}
