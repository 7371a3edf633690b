/**
 * `edgepool conformance <dir>`: runs every `<name>.onnx` that has an expected output
 * `<name>_output_0.pb` (the layout of the ONNX backend test data) through a pool and
 * compares. The input is the one those expected outputs were made from:
 * x = arange(n).reshape(shape) / n as float32. Each job holds that sample twice, so a
 * fixed-batch model also proves it runs on a batch larger than 1 with rows in order.
 */
import { readdir, readFile, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { submitJob } from "../../coordinator/client/submit-job.js";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import { decodeTensorProto } from "../../shared/onnx/proto.js";
import { allClose, sliceRows } from "../../shared/tensor/tensor-ops.js";
import { elementCount } from "../../shared/tensor/tensor.js";
import { ClientAuthSchema, clientOptions, fail, parseOptions, table } from "../cli-util.js";
import { LocalPool } from "../local-pool.js";

const ConformanceOptionsSchema = ClientAuthSchema.extend({
  coordinator: z.string().optional(),
  workers: z.coerce.number().int().min(1).max(16).default(2),
  rtol: z.coerce.number().positive().default(1e-3),
  atol: z.coerce.number().nonnegative().default(1e-7),
  batch: z.coerce.number().int().min(1).max(64).default(2),
});

/** The ONNX test suite loosens rtol for these models; so do we. */
const RTOL_OVERRIDES: Record<string, number> = { light_densenet121: 2e-3 };

interface Case {
  name: string;
  model: string;
  expected: string;
}

async function findCases(dir: string): Promise<Case[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (cause) {
    throw new EdgepoolError("E_NOT_FOUND", `cannot read model folder ${dir}`, { cause });
  }
  const cases = names
    .filter((n) => n.endsWith(".onnx"))
    .map((n) => n.slice(0, -".onnx".length))
    .filter((base) => names.includes(`${base}_output_0.pb`))
    .sort()
    .map((base) => ({ name: base, model: path.join(dir, `${base}.onnx`), expected: path.join(dir, `${base}_output_0.pb`) }));
  if (cases.length === 0) throw new EdgepoolError("E_NOT_FOUND", `no <name>.onnx with <name>_output_0.pb in ${dir}`);
  return cases;
}

export async function conformanceCommand(dir: string, raw: Record<string, unknown>): Promise<number> {
  let pool: LocalPool | undefined;
  let tmp: string | undefined;
  try {
    const opts = parseOptions(ConformanceOptionsSchema, raw);
    const cases = await findCases(dir);
    tmp = await mkdtemp(path.join(os.tmpdir(), "edgepool-conformance-"));
    let url = opts.coordinator;
    if (!url) {
      pool = await LocalPool.start({ workers: opts.workers, threads: 1, logLevel: "warn" });
      url = pool.coordinator.url;
    }
    const client = new CoordinatorClient(url, opts.coordinator ? clientOptions(opts) : {});
    const rows: string[][] = [];
    let failures = 0;
    for (const c of cases) {
      const t0 = performance.now();
      let verdict = "FAIL";
      let detail = "";
      try {
        const bytes = new Uint8Array(await readFile(c.model));
        const info = readModelInfo(bytes);
        const input = info.inputs[0];
        if (info.inputs.length !== 1 || !input || input.dtype !== "float32") {
          throw new EdgepoolError("E_CONFIG", "conformance cases need one float32 input");
        }
        const sample = input.shape.slice(1).map((d) => (typeof d === "number" ? d : 1));
        const n = elementCount(sample);
        const data = new Float32Array(n * opts.batch);
        for (let b = 0; b < opts.batch; b++) for (let i = 0; i < n; i++) data[b * n + i] = i / n;
        const inputFile = path.join(tmp, `${c.name}.npy`);
        await writeNpyFile(inputFile, { dtype: "float32", dims: [opts.batch, ...sample], data });
        const expected = decodeTensorProto(new Uint8Array(await readFile(c.expected)));
        const { files } = await submitJob(client, { model: bytes, inputs: { [input.name]: inputFile }, outDir: path.join(tmp, c.name), shardSize: 1 });
        const outName = info.outputs[0]!.name;
        const got = await readNpyFile(files[outName]!);
        const rtol = RTOL_OVERRIDES[c.name] ?? opts.rtol;
        let worst = 0;
        let ok = true;
        for (let b = 0; b < opts.batch; b++) {
          const row = sliceRows(got, b, b + 1);
          if (elementCount(row.dims) !== elementCount(expected.dims)) {
            throw new EdgepoolError("E_SHAPE", `output [${got.dims.join(",")}] does not match expected [${expected.dims.join(",")}]`);
          }
          const r = allClose({ ...row, dims: expected.dims }, expected, { rtol, atol: opts.atol });
          ok &&= r.ok;
          worst = Math.max(worst, r.maxAbs);
        }
        verdict = ok ? "PASS" : "FAIL";
        detail = `max abs diff ${worst.toExponential(2)} (rtol ${rtol}, atol ${opts.atol})`;
      } catch (err) {
        detail = toEdgepoolError(err).message;
      }
      if (verdict !== "PASS") failures += 1;
      rows.push([c.name, verdict, `${((performance.now() - t0) / 1000).toFixed(2)} s`, detail]);
      process.stdout.write(`${verdict} ${c.name}: ${detail}\n`);
    }
    process.stdout.write(`\n${table(["MODEL", "RESULT", "TIME", "DETAIL"], rows)}\n`);
    process.stdout.write(`${cases.length - failures} passed, ${failures} failed\n`);
    return failures === 0 ? 0 : 1;
  } catch (err) {
    return fail("conformance", err);
  } finally {
    await pool?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}
