/**
 * A test facility, never for production: `EDGEPOOL_FAULT_INJECT=corrupt:<rate>` makes this
 * worker corrupt that share of its results (every float output element shifted, every integer
 * one incremented) after computing them honestly, so that result verification
 * (`submit --redundancy`) can be tested against a worker that lies.
 */
import { z } from "zod";
import { EdgepoolError } from "../shared/errors.js";
import { parseResultFrame } from "../shared/protocol/messages.js";

export const FaultInjectSchema = z
  .string()
  .trim()
  .transform((s, ctx) => {
    const m = /^corrupt:(\d*\.?\d+)$/.exec(s);
    const rate = m ? Number(m[1]) : Number.NaN;
    if (!(rate >= 0 && rate <= 1)) {
      ctx.addIssue({ code: "custom", message: `'${s}' is not a fault to inject; the only one is corrupt:<rate>, a share from 0 to 1 (for tests only)` });
      return z.NEVER;
    }
    return { corrupt: rate };
  });
export type FaultInject = z.infer<typeof FaultInjectSchema>;

/** Corrupts a result frame in place with probability `fault.corrupt`; returns whether it did. */
export function maybeCorrupt(frame: Uint8Array, fault: FaultInject | undefined, random: () => number = Math.random): boolean {
  if (!fault || fault.corrupt <= 0 || random() >= fault.corrupt) return false;
  const { tensors } = parseResultFrame(frame);
  for (const t of tensors) {
    const d = t.data;
    if (d instanceof Float32Array || d instanceof Float64Array) for (let i = 0; i < d.length; i++) d[i] = d[i]! + 1 + random();
    else if (d instanceof BigInt64Array) for (let i = 0; i < d.length; i++) d[i] = d[i]! + 1n;
    // float16 is raw half bits: flipping an exponent bit changes the value by far more than any tolerance.
    else if (t.dtype === "float16") for (let i = 0; i < d.length; i++) d[i] = d[i]! ^ 0x4000;
    else if (t.dtype === "bool") for (let i = 0; i < d.length; i++) d[i] = d[i] ? 0 : 1;
    else if (d instanceof Int32Array || d instanceof Int8Array || d instanceof Uint8Array) for (let i = 0; i < d.length; i++) d[i] = d[i]! + 1;
    else throw new EdgepoolError("E_INTERNAL", `fault injection cannot corrupt a ${t.dtype} output`);
  }
  return true;
}
