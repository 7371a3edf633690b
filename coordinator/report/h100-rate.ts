/**
 * The H100 side of every comparison: its samples/s on a model (the MLPerf result where one
 * exists, else peak x an assumed utilization), and this pool, as measured, in H100s.
 */
import type { ReportData } from "./report-data.js";
import type { Profiles } from "./reference-profiles.js";
import { modelLabel } from "./measured-rates.js";

export const H100_MEASURED = "measured (MLPerf)";
export const H100_PEAK_UTIL = "peak x utilization, assumed";

export interface H100Rate {
  samplesPerSec: number;
  method: typeof H100_MEASURED | typeof H100_PEAK_UTIL;
  /** Profile paths of the figures used. */
  figures: string[];
}

/** True when a model's cost is within the tolerance of ResNet-50's. */
export function isResNet50Like(flopsPerSample: number, p: Profiles): boolean {
  const ref = p.models.resnet50Flops.value;
  return Math.abs(flopsPerSample - ref) <= p.models.resnet50Tolerance.value * ref;
}

/**
 * Samples/s of one H100 on a model of this cost: the MLPerf ResNet-50 result for
 * ResNet-50-like models, else FP16 dense peak x utilization / FLOPs per sample.
 */
export function h100SamplesPerSec(flopsPerSample: number, p: Profiles, opts: { utilization?: number; measuredScale?: number } = {}): H100Rate {
  if (isResNet50Like(flopsPerSample, p)) {
    return {
      samplesPerSec: p.h100.resnet50SamplesPerSec.value * (opts.measuredScale ?? 1),
      method: H100_MEASURED,
      figures: ["h100.resnet50SamplesPerSec", "models.resnet50Flops", "models.resnet50Tolerance"],
    };
  }
  const util = opts.utilization ?? p.h100.utilization.central.value;
  return {
    samplesPerSec: (p.h100.sxm.fp16.value * 1e12 * util) / flopsPerSample,
    method: H100_PEAK_UTIL,
    figures: ["h100.sxm.fp16", "h100.utilization.central"],
  };
}

/** This pool, measured, in H100s for one model. */
export interface PoolEquivalent {
  model: string;
  modelName: string;
  flopsPerSample: number;
  jobId: string;
  poolSamplesPerSec: number;
  poolGflopsPerSec: number;
  h100: H100Rate;
  h100Equivalents: number;
  /** pool GFLOP/s / (H100 SXM FP32 peak x utilization). */
  flopEquivalentFp32: number;
  /** pool GFLOP/s / (H100 SXM FP16 peak x utilization). */
  flopEquivalentFp16: number;
}

/** H100-equivalents of this pool for each model a real job ran, from its fastest real job. */
export function poolInH100s(data: ReportData, p: Profiles): PoolEquivalent[] {
  const util = p.h100.utilization.central.value;
  const out: PoolEquivalent[] = [];
  for (const m of data.models) {
    const jobs = data.jobs.filter((j) => j.model === m.sha256 && !j.virtual && j.samplesPerSec > 0);
    const done = jobs.filter((j) => j.state === "done");
    const pick = (done.length > 0 ? done : jobs).reduce<(typeof jobs)[number] | null>(
      (best, j) => (best === null || j.samplesPerSec > best.samplesPerSec ? j : best),
      null,
    );
    if (!pick || m.flopsPerSample <= 0) continue;
    const h100 = h100SamplesPerSec(m.flopsPerSample, p);
    const gflops = (pick.samplesPerSec * m.flopsPerSample) / 1e9;
    out.push({
      model: m.sha256,
      modelName: modelLabel(data, m.sha256),
      flopsPerSample: m.flopsPerSample,
      jobId: pick.id,
      poolSamplesPerSec: pick.samplesPerSec,
      poolGflopsPerSec: gflops,
      h100,
      h100Equivalents: pick.samplesPerSec / h100.samplesPerSec,
      flopEquivalentFp32: gflops / (p.h100.sxm.fp32.value * 1e3 * util),
      flopEquivalentFp16: gflops / (p.h100.sxm.fp16.value * 1e3 * util),
    });
  }
  return out;
}
