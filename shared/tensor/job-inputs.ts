/**
 * Checks a job's named inputs against a model's signature before any work is planned: the
 * same names, dtypes, ranks and fixed trailing dims, and one batch size N shared by all.
 * Used by the coordinator (authoritative) and by `submit` (to fail before uploading), and,
 * through `validateShardInputs`, by both worker runners before a shard reaches ONNX Runtime.
 */
import { EdgepoolError } from "../errors.js";
import { checkTensor, type DType, type Tensor } from "./tensor.js";

export interface SignatureInput {
  name: string;
  dtype: DType;
  shape: (number | string)[];
}

export interface GivenInput {
  name: string;
  dtype: DType;
  shape: number[];
}

function fmt(shape: readonly (number | string)[]): string {
  return `[${shape.join(",")}]`;
}

/** Returns the shared batch size N; throws a clear E_BAD_REQUEST, E_DTYPE or E_SHAPE error. */
export function validateJobInputs(model: readonly SignatureInput[], given: readonly GivenInput[]): number {
  const expected = new Map(model.map((m) => [m.name, m]));
  const names = model.map((m) => m.name).join(", ");
  const seen = new Set<string>();
  for (const g of given) {
    if (seen.has(g.name)) throw new EdgepoolError("E_BAD_REQUEST", `input '${g.name}' is given twice`);
    seen.add(g.name);
    if (!expected.has(g.name)) {
      throw new EdgepoolError("E_BAD_REQUEST", `the model has no input named '${g.name}'; its inputs are: ${names}`);
    }
  }
  for (const m of model) {
    if (!seen.has(m.name)) {
      throw new EdgepoolError("E_BAD_REQUEST", `input '${m.name}' ${m.dtype} ${fmt(m.shape)} is missing; the model needs: ${names}`);
    }
  }
  let rows: number | undefined;
  let rowsFrom = "";
  for (const g of given) {
    const m = expected.get(g.name)!;
    if (g.dtype !== m.dtype) {
      throw new EdgepoolError("E_DTYPE", `input '${g.name}' is ${g.dtype} but the model wants ${m.dtype}; convert the .npy file`);
    }
    if (g.shape.length !== m.shape.length || g.shape.length === 0) {
      throw new EdgepoolError(
        "E_SHAPE",
        `input '${g.name}' has shape ${fmt(g.shape)} but the model wants ${fmt(m.shape)} (rank ${m.shape.length}, batch first)`,
      );
    }
    for (let i = 1; i < m.shape.length; i++) {
      const want = m.shape[i];
      if (typeof want === "number" && want !== g.shape[i]) {
        throw new EdgepoolError(
          "E_SHAPE",
          `input '${g.name}' has shape ${fmt(g.shape)} but the model wants ${fmt(m.shape)} (dim ${i} differs)`,
        );
      }
    }
    const n = g.shape[0]!;
    if (rows === undefined) {
      rows = n;
      rowsFrom = g.name;
    } else if (n !== rows) {
      throw new EdgepoolError(
        "E_SHAPE",
        `inputs have different batch sizes: '${rowsFrom}' has ${rows} rows, '${g.name}' has ${n}; all inputs must share dim 0`,
      );
    }
  }
  if (rows === undefined || rows < 1) throw new EdgepoolError("E_SHAPE", "the job has no rows: dim 0 of the inputs is 0");
  return rows;
}

/** A model's inputs as a runner knows them: its signature, and whether every batch dim is fixed at 1. */
export interface ShardSignature {
  inputs: readonly SignatureInput[];
  fixedBatch: boolean;
}

/**
 * Checks one shard's tensors before a runner feeds them to a model: each tensor is
 * well-formed, names, dtypes, ranks and fixed dims match the signature, dim 0 is `rows`, and
 * a batch dim the model fixes is honoured (a model fixed at 1 is run row by row instead).
 * Throws E_SHAPE, E_DTYPE or E_BAD_REQUEST naming the input.
 */
export function validateShardInputs(info: ShardSignature, inputs: readonly (Tensor & { name: string })[], rows: number): void {
  if (!Number.isInteger(rows) || rows < 1) throw new EdgepoolError("E_SHAPE", `a shard needs at least one row, got ${rows}`);
  for (const t of inputs) checkTensor(t, `input '${t.name}'`);
  const n = validateJobInputs(
    info.inputs,
    inputs.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.dims })),
  );
  if (n !== rows) throw new EdgepoolError("E_SHAPE", `the inputs have ${n} rows but the shard covers ${rows}`);
  if (info.fixedBatch) return;
  for (const m of info.inputs) {
    const b = m.shape[0];
    if (typeof b === "number" && b !== rows) {
      throw new EdgepoolError(
        "E_SHAPE",
        `input '${m.name}' has shape ${fmt([rows, ...m.shape.slice(1)])} but the model wants ${fmt(m.shape)}: its batch dim is fixed at ${b}`,
      );
    }
  }
}

/** Characters outside [A-Za-z0-9._-] in a tensor name become '_' to make a file name. */
export function safeFileName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, "_");
  return s === "" || s === "." || s === ".." ? `_${s}` : s;
}
