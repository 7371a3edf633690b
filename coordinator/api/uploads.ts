/** An uploaded input as the API shows it (POST /api/uploads): one schema for server and client. */
import { z } from "zod";
import { EdgepoolError } from "../../shared/errors.js";
import { DTYPES, isDType } from "../../shared/tensor/tensor.js";

export const UploadViewSchema = z.object({
  /** The id a job names this input by. */
  id: z.string(),
  dtype: z.enum(DTYPES),
  shape: z.array(z.number()),
  bytes: z.number(),
});
export type UploadView = z.infer<typeof UploadViewSchema>;

/**
 * The public view of a stored upload. Its dtype was read from the .npy header as a string,
 * so it is checked here against the dtypes the API names.
 */
export function uploadView(u: { id: string; dtype: string; shape: number[]; bytes: number }): UploadView {
  const dtype = u.dtype;
  if (!isDType(dtype)) throw new EdgepoolError("E_INTERNAL", `upload ${u.id} has dtype ${dtype}, which the API does not name`);
  return { id: u.id, dtype, shape: u.shape, bytes: u.bytes };
}
