/** `edgepool models`, `export-model` and `inspect`: the catalog and model signatures. */
import { readFile, writeFile } from "node:fs/promises";
import { CATALOG, catalogModel } from "../../shared/onnx/catalog.js";
import { countFlops } from "../../shared/onnx/flops.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import { fail, table } from "../cli-util.js";

export function modelsCommand(): number {
  const rows = CATALOG.map((m) => {
    const bytes = m.build();
    return [m.name, `${(countFlops(bytes).flopsPerSample / 1e6).toFixed(2)}`, m.description];
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

export async function inspectCommand(file: string, opts: { json?: boolean }): Promise<number> {
  try {
    const bytes = new Uint8Array(await readFile(file));
    const info = readModelInfo(bytes);
    const flops = countFlops(bytes);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ file, ...info, flopsPerSample: flops.flopsPerSample, flopsByOp: flops.byOp, unknownOps: flops.unknownOps }, null, 2)}\n`);
      return 0;
    }
    const io = (kind: string, list: typeof info.inputs) => list.map((t) => [kind, t.name, t.dtype, `[${t.shape.join(",")}]`]);
    process.stdout.write(`${table(["", "NAME", "DTYPE", "SHAPE"], [...io("input", info.inputs), ...io("output", info.outputs)])}\n`);
    process.stdout.write(`opset ${info.opset}; batch ${info.fixedBatch ? "fixed at 1 (run sample by sample)" : "dynamic"}\n`);
    process.stdout.write(`FLOPs per sample: ${flops.flopsPerSample.toExponential(3)} (${(flops.flopsPerSample / 1e9).toFixed(3)} GFLOP)\n`);
    if (flops.unknownOps.length > 0) process.stdout.write(`not counted (unknown ops): ${flops.unknownOps.join(", ")}\n`);
    return 0;
  } catch (err) {
    return fail("inspect", err);
  }
}
