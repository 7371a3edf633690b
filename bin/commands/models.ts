/** `edgepool models`, `export-model` and `inspect`: the catalog and model signatures. */
import { readFile, writeFile } from "node:fs/promises";
import { CATALOG, catalogModel } from "../../shared/onnx/catalog.js";
import { z } from "zod";
import { EdgepoolError } from "../../shared/errors.js";
import { type CausalLmLayout, causalLmLayout, generationStepDims, weightStats } from "../../shared/onnx/causal-lm.js";
import { countFlops } from "../../shared/onnx/flops.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import { fail, table } from "../cli-util.js";

/** Context length at which a language model's FLOPs per generated token are quoted. */
const LM_CONTEXT = 128;

export function modelsCommand(): number {
  const rows = CATALOG.map((m) => {
    const bytes = m.build();
    // A language model has no fixed sample: its sequence dims are symbolic, so quote one
    // generation step at a stated context instead.
    const info = readModelInfo(bytes);
    const lm = causalLmLayout(info);
    if (lm === undefined) return [m.name, `${(countFlops(bytes).flopsPerSample / 1e6).toFixed(2)}`, m.description];
    const step = countFlops(bytes, { dims: generationStepDims(info, lm, LM_CONTEXT) });
    return [m.name, `${(step.flopsPerSample / 1e6).toFixed(2)}/token`, `${m.description} (FLOPs per token at context ${LM_CONTEXT})`];
  });
  process.stdout.write(`${table(["NAME", "MFLOP/SAMPLE", "DESCRIPTION"], rows)}\n`);
  return 0;
}

export async function exportModelCommand(name: string, file: string): Promise<number> {
  try {
    const bytes = catalogModel(name).build();
    await writeFile(file, bytes);
    process.stdout.write(`wrote ${name} (${bytes.byteLength} bytes) to ${file}\n`);
    return 0;
  } catch (err) {
    return fail("export-model", err);
  }
}

const ContextSchema = z.number().int().min(2).max(1 << 20);

function layoutLine(lm: CausalLmLayout): string {
  if (!lm.kvCache) {
    return `causal LM without a KV cache: each generated token re-runs the whole sequence (slower); vocab ${lm.vocab ?? "symbolic"}`;
  }
  return (
    `causal LM (decoder with past): ${lm.layers} layers, ${lm.kvHeads} kv heads, head dim ${lm.headDim}, ` +
    `vocab ${lm.vocab ?? "symbolic"}, KV cache ${lm.kvDtype}, position_ids ${lm.hasPositionIds ? "yes" : "no"}`
  );
}

export async function inspectCommand(file: string, opts: { json?: boolean; context?: number }): Promise<number> {
  try {
    const context = opts.context ?? LM_CONTEXT;
    if (!ContextSchema.safeParse(context).success) {
      throw new EdgepoolError("E_CONFIG", `--context must be an integer from 2 to ${1 << 20} tokens, got ${context}`);
    }
    const bytes = new Uint8Array(await readFile(file));
    const info = readModelInfo(bytes);
    // A causal LM's sequence dims are symbolic, so its FLOPs are counted for one generation
    // step at `context` tokens rather than per sample.
    const lm = causalLmLayout(info);
    const flops = countFlops(bytes, lm === undefined ? {} : { dims: generationStepDims(info, lm, context) });
    const weights = lm === undefined ? undefined : weightStats(bytes);
    if (opts.json) {
      const counts =
        lm === undefined
          ? { flopsPerSample: flops.flopsPerSample }
          : { causalLm: { ...lm, ...weights }, context, flopsPerToken: flops.flopsPerSample };
      process.stdout.write(`${JSON.stringify({ file, ...info, ...counts, flopsByOp: flops.byOp, unknownOps: flops.unknownOps }, null, 2)}\n`);
      return 0;
    }
    const io = (kind: string, list: typeof info.inputs) => list.map((t) => [kind, t.name, t.dtype, `[${t.shape.join(",")}]`]);
    process.stdout.write(`${table(["", "NAME", "DTYPE", "SHAPE"], [...io("input", info.inputs), ...io("output", info.outputs)])}\n`);
    process.stdout.write(`opset ${info.opset}; batch ${info.fixedBatch ? "fixed at 1 (run sample by sample)" : "dynamic"}\n`);
    if (lm === undefined || weights === undefined) {
      process.stdout.write(`FLOPs per sample: ${flops.flopsPerSample.toExponential(3)} (${(flops.flopsPerSample / 1e9).toFixed(3)} GFLOP)\n`);
    } else {
      process.stdout.write(`${layoutLine(lm)}\n`);
      process.stdout.write(
        `parameters ${weights.parameters.toLocaleString("en-US")}; weight bytes ${weights.weightBytes.toLocaleString("en-US")} ` +
          `(${(weights.weightBytes / 2 ** 20).toFixed(2)} MiB)\n`,
      );
      process.stdout.write(
        `FLOPs per generated token at context ${context}: ${flops.flopsPerSample.toExponential(3)} (${(flops.flopsPerSample / 1e6).toFixed(3)} MFLOP)\n`,
      );
    }
    if (flops.unknownOps.length > 0) process.stdout.write(`not counted (unknown ops): ${flops.unknownOps.join(", ")}\n`);
    return 0;
  } catch (err) {
    return fail("inspect", err);
  }
}
