/** Times one job from the coordinator's own record of it (benchmarks and scaling runs). */
import { settleDisk } from "../../shared/node/system.js";
import { CoordinatorClient } from "./client.js";

/**
 * Runs one single-input job and returns its rates over the job's wall time on the coordinator.
 * The job starts once its upload is flushed to disk: the writeback of a large input would
 * otherwise take CPU from the workers while the job is timed.
 */
export async function jobRate(url: string, model: Uint8Array, input: { name: string; file: string }, shardSize?: number) {
  const client = new CoordinatorClient(url);
  const sha256 = (await client.uploadModel(model)).sha256;
  const upload = (await client.uploadNpy(input.file)).id;
  await settleDisk();
  const created = await client.createJob({ model: sha256, inputs: { [input.name]: upload }, ...(shardSize ? { shardSize } : {}) });
  const job = await client.waitForJob(created.id, { intervalMs: 1000 });
  if (job.state !== "done") throw new Error(`bench job ${job.id} ${job.state}: ${job.error ?? ""}`);
  const secs = (job.finishedAt! - job.startedAt!) / 1000;
  return { samplesPerSec: job.rows / secs, shardsPerSec: job.shards / secs };
}
