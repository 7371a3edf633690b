/** `edgepool submit`: run one job through a coordinator and save its outputs as .npy files. */
import { readFile, stat } from "node:fs/promises";
import { z } from "zod";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { submitJob } from "../../coordinator/client/submit-job.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { EdgepoolError } from "../../shared/errors.js";
import { ClientAuthSchema, clientOptions, fail, fmtRate, parseOptions } from "../cli-util.js";
import { JobProgress, progressMode } from "../progress.js";

const SubmitOptionsSchema = ClientAuthSchema.extend({
  coordinator: z.string().min(1),
  model: z.string().min(1),
  input: z.array(z.string()).min(1, "give at least one --input <name>=<file.npy>"),
  out: z.string().min(1),
  shardSize: z.coerce.number().int().positive().optional(),
  redundancy: z.coerce.number().int().min(1, "--redundancy is at least 1").max(9, "--redundancy is at most 9").default(1),
  rtol: z.coerce.number().nonnegative().optional(),
  atol: z.coerce.number().nonnegative().optional(),
  canaries: z.coerce.number().int().min(0, "--canaries is at least 0").max(64, "--canaries is at most 64").default(0),
  quiet: z.boolean().default(false),
});

/** A model argument is a file path or a catalog name; anything else is a clear error. */
export async function loadModelArg(model: string): Promise<Uint8Array> {
  const isFile = await stat(model).then((s) => s.isFile(), () => false);
  if (isFile) return new Uint8Array(await readFile(model));
  const entry = (() => {
    try {
      return catalogModel(model);
    } catch {
      return undefined;
    }
  })();
  if (!entry) {
    throw new EdgepoolError("E_NOT_FOUND", `unknown model '${model}': no such file and no catalog model of that name (see 'edgepool models')`);
  }
  return entry.build();
}

function parseInputs(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0 || eq === p.length - 1) throw new EdgepoolError("E_CONFIG", `--input '${p}' must look like <name>=<file.npy>`);
    const name = p.slice(0, eq);
    if (name in out) throw new EdgepoolError("E_CONFIG", `--input ${name} is given twice`);
    out[name] = p.slice(eq + 1);
  }
  return out;
}

export async function submitCommand(raw: Record<string, unknown>): Promise<number> {
  try {
    const opts = parseOptions(SubmitOptionsSchema, raw);
    const inputs = parseInputs(opts.input);
    for (const [name, file] of Object.entries(inputs)) {
      const ok = await stat(file).then((s) => s.isFile(), () => false);
      if (!ok) throw new EdgepoolError("E_NOT_FOUND", `input '${name}': file ${file} does not exist`);
    }
    const model = await loadModelArg(opts.model);
    const client = new CoordinatorClient(opts.coordinator, clientOptions(opts));
    const progress = new JobProgress(progressMode(process.stderr, opts.quiet), process.stderr);
    let outage = false;
    let result: Awaited<ReturnType<typeof submitJob>>;
    try {
      result = await submitJob(client, {
        model,
        inputs,
        outDir: opts.out,
        ...(opts.shardSize ? { shardSize: opts.shardSize } : {}),
        redundancy: opts.redundancy,
        ...(opts.rtol !== undefined ? { rtol: opts.rtol } : {}),
        ...(opts.atol !== undefined ? { atol: opts.atol } : {}),
        ...(opts.canaries > 0 ? { canaries: opts.canaries } : {}),
        onJob: (j) => {
          const how = j.shardSize ? `${Math.ceil(j.rows / j.shardSize)} shards of ${j.shardSize} rows` : "shard sizes follow each worker's speed";
          progress.say(`job ${j.id}: ${j.rows} samples, ${how}${j.redundancy > 1 ? `, each computed by ${j.redundancy} workers and compared` : ""}`);
        },
        onReconnecting: (e) => {
          if (outage) return;
          outage = true;
          progress.say(`coordinator unreachable (${e.message}); waiting for it to come back`);
        },
        onProgress: (j) => {
          if (outage) progress.say(`coordinator is back; job ${j.id} is ${j.state}`);
          outage = false;
          progress.update(j);
        },
      });
    } finally {
      progress.stop();
    }
    const { job, files } = result;
    const secs = job.startedAt && job.finishedAt ? (job.finishedAt - job.startedAt) / 1000 : 0;
    process.stdout.write(
      `job ${job.id} done: ${job.rows} samples in ${secs.toFixed(2)} s (${fmtRate(job.samplesPerSec)} samples/s); wrote ${Object.values(files).join(", ")}\n`,
    );
    return 0;
  } catch (err) {
    return fail("submit", err);
  }
}
