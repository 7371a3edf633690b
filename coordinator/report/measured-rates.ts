/**
 * What this pool measured, per real worker and per real job: busy-time rates, pool
 * efficiency, and the simulated workers counted apart. Virtual (simulated) workers and jobs
 * that touched them never enter a figure about real devices.
 */
import type { ReportData } from "./report-data.js";

/** One real worker's measured speed on one model. */
export interface WorkerModelRate {
  workerId: string;
  workerName: string;
  model: string;
  modelName: string;
  shards: number;
  samples: number;
  /** Busy seconds: compute plus CPU-cap idling. */
  seconds: number;
  samplesPerSec: number;
  gflopsPerSec: number;
}

/** A model's display name: its catalog name, or the start of its sha256. */
export function modelLabel(data: ReportData, sha: string): string {
  const m = data.models.find((x) => x.sha256 === sha);
  return m?.name ?? `model ${sha.slice(0, 12)}`;
}

function flopsOf(data: ReportData, sha: string): number | null {
  return data.models.find((x) => x.sha256 === sha)?.flopsPerSample ?? null;
}

/** samples / ((computeMs + throttleMs) / 1000) per (real worker, model); virtual workers excluded. */
export function workerRates(data: ReportData): WorkerModelRate[] {
  const out: WorkerModelRate[] = [];
  for (const w of data.workers) {
    if (w.virtual) continue;
    for (const m of w.perModel) {
      const seconds = (m.computeMs + m.throttleMs) / 1000;
      if (seconds <= 0 || m.samples <= 0) continue;
      const samplesPerSec = m.samples / seconds;
      const flops = flopsOf(data, m.model) ?? 0;
      out.push({
        workerId: w.id,
        workerName: w.name,
        model: m.model,
        modelName: modelLabel(data, m.model),
        shards: m.shards,
        samples: m.samples,
        seconds,
        samplesPerSec,
        gflopsPerSec: (samplesPerSec * flops) / 1e9,
      });
    }
  }
  return out;
}

/** The middle value (mean of the two middle ones for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Mean busy seconds per shard over real workers, or null when no shard was measured. */
export function measuredShardSeconds(data: ReportData): number | null {
  let ms = 0;
  let shards = 0;
  for (const w of data.workers) {
    if (w.virtual) continue;
    for (const m of w.perModel) {
      ms += m.computeMs + m.throttleMs;
      shards += m.shards;
    }
  }
  return shards > 0 && ms > 0 ? ms / 1000 / shards : null;
}

/** A real job's pooled rate beside the sum of its workers' individual rates. */
export interface JobEfficiency {
  jobId: string;
  model: string;
  modelName: string;
  state: string;
  rows: number;
  wallSec: number | null;
  samplesPerSec: number;
  /** Sum over real workers that ran this model of their individual samples/s. */
  sumWorkerSamplesPerSec: number;
  workers: number;
  /** samplesPerSec / sumWorkerSamplesPerSec, or null when no worker rate is known. */
  efficiency: number | null;
}

/** Pool efficiency per real job: job samples/s / sum of participating real workers' samples/s. */
export function poolEfficiency(data: ReportData, rates: readonly WorkerModelRate[] = workerRates(data)): JobEfficiency[] {
  return data.jobs
    .filter((j) => !j.virtual && j.samplesPerSec > 0)
    .map((j) => {
      const onModel = rates.filter((r) => r.model === j.model);
      const sum = onModel.reduce((acc, r) => acc + r.samplesPerSec, 0);
      return {
        jobId: j.id,
        model: j.model,
        modelName: modelLabel(data, j.model),
        state: j.state,
        rows: j.rows,
        wallSec: j.startedAt !== null && j.finishedAt !== null ? (j.finishedAt - j.startedAt) / 1000 : null,
        samplesPerSec: j.samplesPerSec,
        sumWorkerSamplesPerSec: sum,
        workers: onModel.length,
        efficiency: sum > 0 ? j.samplesPerSec / sum : null,
      };
    });
}

/** Counts of simulated workers and their work, kept apart from every real figure. */
export interface VirtualSummary {
  workers: number;
  byProfile: Array<{ profile: string; workers: number; samples: number; shards: number }>;
  samples: number;
  shards: number;
  jobs: number;
}

/** Simulated workers by profile, with their samples and shards, and the jobs that touched them. */
export function virtualSummary(data: ReportData): VirtualSummary {
  const byProfile = new Map<string, { workers: number; samples: number; shards: number }>();
  let samples = 0;
  let shards = 0;
  let workers = 0;
  for (const w of data.workers) {
    if (!w.virtual) continue;
    workers++;
    const key = w.profile ?? "unlabelled";
    const e = byProfile.get(key) ?? { workers: 0, samples: 0, shards: 0 };
    e.workers++;
    for (const m of w.perModel) {
      e.samples += m.samples;
      e.shards += m.shards;
      samples += m.samples;
      shards += m.shards;
    }
    byProfile.set(key, e);
  }
  return {
    workers,
    byProfile: [...byProfile].map(([profile, e]) => ({ profile, ...e })).sort((x, y) => x.profile.localeCompare(y.profile)),
    samples,
    shards,
    jobs: data.jobs.filter((j) => j.virtual).length,
  };
}
