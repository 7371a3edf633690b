/**
 * The arithmetic of the report, as pure functions: per-device rates measured by the pool,
 * the pool in H100-equivalents, the extrapolation to N devices, its sensitivity, and the
 * verdict text. For one workload M (CLAIM.md):
 *
 *   H100s = devices x sum_tier(share x rate x sustained x network) x availability / k / H100_rate(M)
 *
 * computed twice: peak vs peak (phone NPU INT8 TOPS against H100 INT8 TOPS) and measured vs
 * measured (MLPerf Mobile tier rates, or this pool's own per-device rate, against the MLPerf
 * H100 result where one exists, else H100 peak x an assumed utilization).
 *
 * Virtual (simulated) workers and jobs that touched them never enter a figure about real devices.
 */
import { catalogModel, catalogNames } from "../../shared/onnx/catalog.js";
import type { ReportData } from "./report-data.js";
import type { Profiles } from "./reference-profiles.js";

// --- measured rates --------------------------------------------------------------------

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

// --- H100 reference ----------------------------------------------------------------------

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

// --- extrapolation -----------------------------------------------------------------------

export interface Link {
  downlinkBytesPerSec: number;
  uplinkBytesPerSec: number;
}

/**
 * Fraction of its compute rate a device can be fed over its links:
 * min(1, down / (input bytes x rate), up / (output bytes x rate)).
 */
export function networkFactor(samplesPerSec: number, inputBytes: number, outputBytes: number, link: Link): number {
  if (samplesPerSec <= 0) return 1;
  const down = inputBytes > 0 ? link.downlinkBytesPerSec / (inputBytes * samplesPerSec) : Number.POSITIVE_INFINITY;
  const up = outputBytes > 0 ? link.uplinkBytesPerSec / (outputBytes * samplesPerSec) : Number.POSITIVE_INFINITY;
  return Math.min(1, down, up);
}

export interface TierInput {
  name: string;
  /** Share of the fleet; shares are normalised to sum to 1. */
  share: number;
  /** Burst samples/s of one device of this tier on the workload. */
  samplesPerSec: number;
}

export interface ExtrapolationParams {
  devices: number;
  tiers: TierInput[];
  availability: number;
  sustained: number;
  redundancy: number;
  inputBytes: number;
  outputBytes: number;
  /** null: inputs already on the device, no network limit. */
  link: Link | null;
  h100SamplesPerSec: number;
}

export interface LadderStep {
  step: string;
  h100s: number;
}

export interface Extrapolation {
  /** Cumulative H100-equivalents as each factor is applied; the last step is the answer. */
  ladder: LadderStep[];
  h100s: number;
  /** Per device, averaged over the mix, after sustained and network, before availability. */
  perDeviceSamplesPerSec: number;
  /** Useful samples/s of the whole fleet. */
  fleetSamplesPerSec: number;
  /** Mix-weighted network factor. */
  networkFactor: number;
  tiers: Array<TierInput & { normalisedShare: number; networkFactor: number }>;
}

/** devices x sum(share x rate x sustained x network) x availability / k / H100 rate. */
export function extrapolate(x: ExtrapolationParams): Extrapolation {
  const total = x.tiers.reduce((acc, t) => acc + t.share, 0);
  const tiers = x.tiers.map((t) => {
    const sustainedRate = t.samplesPerSec * x.sustained;
    const nf = x.link ? networkFactor(sustainedRate, x.inputBytes, x.outputBytes, x.link) : 1;
    return { ...t, normalisedShare: total > 0 ? t.share / total : 0, networkFactor: nf };
  });
  const raw = tiers.reduce((acc, t) => acc + t.normalisedShare * t.samplesPerSec, 0);
  const sustained = raw * x.sustained;
  const fed = tiers.reduce((acc, t) => acc + t.normalisedShare * t.samplesPerSec * x.sustained * t.networkFactor, 0);
  const per = (rate: number) => (x.devices * rate) / x.h100SamplesPerSec;
  const ladder: LadderStep[] = [
    { step: "peak or burst rate, every device always on", h100s: per(raw) },
    { step: "x availability", h100s: per(raw * x.availability) },
    { step: "x sustained", h100s: per(sustained * x.availability) },
    { step: "/ redundancy", h100s: per((sustained * x.availability) / x.redundancy) },
    { step: "x network", h100s: per((fed * x.availability) / x.redundancy) },
  ];
  const fleet = (x.devices * fed * x.availability) / x.redundancy;
  return {
    ladder,
    h100s: fleet / x.h100SamplesPerSec,
    perDeviceSamplesPerSec: fed,
    fleetSamplesPerSec: fleet,
    networkFactor: sustained > 0 ? fed / sustained : 1,
    tiers,
  };
}

/** A workload the extrapolation is computed for. */
export interface Workload {
  key: string;
  label: string;
  flopsPerSample: number;
  inputBytes: number;
  /** Where inputBytes came from. */
  inputBytesSource: string;
  outputBytes: number;
  /** Median real per-device samples/s this pool measured (or scaled), if any. */
  poolPerDeviceSamplesPerSec: number | null;
  poolRateNote: string;
}

export type Variant = "peak" | "measured" | "pool";

export const VARIANT_LABELS: Record<Variant, string> = {
  peak: "peak vs peak (phone NPU INT8 TOPS vs H100 SXM INT8 TOPS)",
  measured: "measured vs measured (MLPerf Mobile phone tiers vs H100)",
  pool: "measured vs measured (this pool's devices, as they ran it, vs H100)",
};

/** The knobs the sensitivity analysis turns; `centralKnobs` gives the profile's values. */
export interface Knobs {
  devices: number;
  availability: number;
  sustained: number;
  redundancy: number;
  tierRateScale: number;
  flagshipShareShift: number;
  h100MeasuredScale: number;
  utilization: number;
  linkScale: number;
  localInput: boolean;
}

export function centralKnobs(p: Profiles, devices?: number): Knobs {
  return {
    devices: devices ?? p.fleet.devices.value,
    availability: p.availability.central.value,
    sustained: p.sustained.central.value,
    redundancy: p.redundancy.central.value,
    tierRateScale: 1,
    flagshipShareShift: 0,
    h100MeasuredScale: 1,
    utilization: p.h100.utilization.central.value,
    linkScale: 1,
    localInput: false,
  };
}

const TIERS = ["flagship", "mid", "low"] as const;

/** The extrapolation inputs for one workload, variant and set of knobs. */
export function scenarioParams(p: Profiles, w: Workload, variant: Variant, k: Knobs): ExtrapolationParams | null {
  const shift = k.flagshipShareShift;
  const shares = {
    flagship: Math.max(0, p.phones.flagship.share.value + shift),
    mid: p.phones.mid.share.value,
    low: Math.max(0, p.phones.low.share.value - shift),
  };
  let tiers: TierInput[];
  let h100: number;
  if (variant === "peak") {
    tiers = TIERS.map((t) => ({
      name: t,
      share: shares[t],
      samplesPerSec: ((p.phones[t].npuTops.value * 1e12) / w.flopsPerSample) * k.tierRateScale,
    }));
    h100 = (p.h100.sxm.int8.value * 1e12) / w.flopsPerSample;
  } else {
    h100 = h100SamplesPerSec(w.flopsPerSample, p, { utilization: k.utilization, measuredScale: k.h100MeasuredScale }).samplesPerSec;
    if (variant === "measured") {
      const scale = p.models.mobilenetV4Flops.value / w.flopsPerSample;
      tiers = TIERS.map((t) => ({
        name: t,
        share: shares[t],
        samplesPerSec: p.phones[t].mlperfSamplesPerSec.value * scale * k.tierRateScale,
      }));
    } else {
      if (w.poolPerDeviceSamplesPerSec === null) return null;
      tiers = [{ name: "this pool's median device", share: 1, samplesPerSec: w.poolPerDeviceSamplesPerSec * k.tierRateScale }];
    }
  }
  return {
    devices: k.devices,
    tiers,
    availability: k.availability,
    sustained: k.sustained,
    redundancy: k.redundancy,
    inputBytes: w.inputBytes,
    outputBytes: w.outputBytes,
    link: k.localInput
      ? null
      : {
          downlinkBytesPerSec: (p.network.downlinkMbps.value * 1e6 * k.linkScale) / 8,
          uplinkBytesPerSec: (p.network.uplinkMbps.value * 1e6 * k.linkScale) / 8,
        },
    h100SamplesPerSec: h100,
  };
}

/** The extrapolation for one workload and variant at the profile's central values. */
export function extrapolateWorkload(p: Profiles, w: Workload, variant: Variant, devices?: number): Extrapolation | null {
  const params = scenarioParams(p, w, variant, centralKnobs(p, devices));
  return params ? extrapolate(params) : null;
}

// --- sensitivity -------------------------------------------------------------------------

export interface TornadoBar {
  factor: string;
  lowLabel: string;
  highLabel: string;
  /** Answer (H100s) with the factor at its low bound. */
  atLow: number;
  /** Answer (H100s) with the factor at its high bound. */
  atHigh: number;
  /** |atHigh - atLow|. */
  swing: number;
}

export interface Tornado {
  variant: Variant;
  workload: string;
  baseline: number;
  bars: TornadoBar[];
}

const g3 = (x: number) => Number(x.toPrecision(3)).toString();

/** The answer at each factor's low and high bound, sorted by swing (largest first). */
export function tornado(p: Profiles, w: Workload, variant: Variant, devices?: number): Tornado | null {
  const base = centralKnobs(p, devices);
  const answer = (k: Knobs): number | null => {
    const params = scenarioParams(p, w, variant, k);
    return params ? extrapolate(params).h100s : null;
  };
  const baseline = answer(base);
  if (baseline === null) return null;
  const bars: TornadoBar[] = [];
  const add = (factor: string, lowLabel: string, highLabel: string, low: Partial<Knobs>, high: Partial<Knobs>) => {
    const atLow = answer({ ...base, ...low });
    const atHigh = answer({ ...base, ...high });
    if (atLow === null || atHigh === null) return;
    // Differences at rounding-error level (a factor that does not bind) count as no swing.
    const swing = Math.abs(atHigh - atLow);
    bars.push({ factor, lowLabel, highLabel, atLow, atHigh, swing: swing <= Math.abs(baseline) * 1e-9 ? 0 : swing });
  };
  const av = p.availability;
  add("availability", g3(av.low.value), g3(av.high.value), { availability: av.low.value }, { availability: av.high.value });
  const su = p.sustained;
  add("sustained", g3(su.low.value), g3(su.high.value), { sustained: su.low.value }, { sustained: su.high.value });
  const rd = p.redundancy;
  add("redundancy", `k=${g3(rd.high.value)}`, `k=${g3(rd.central.value)}`, { redundancy: rd.high.value }, { redundancy: rd.central.value });
  const spread = p.sensitivity.tierRateSpread.value;
  add(
    variant === "pool" ? "per-device rate" : "tier rates",
    `x${g3(1 - spread)}`,
    `x${g3(1 + spread)}`,
    { tierRateScale: 1 - spread },
    { tierRateScale: 1 + spread },
  );
  if (variant === "measured") {
    const gl = p.runtime.portableGapLow.value;
    const gh = p.runtime.portableGapHigh.value;
    add("portable runtime instead of vendor NPU SDK", `/${g3(gh)}`, `/${g3(gl)}`, { tierRateScale: 1 / gh }, { tierRateScale: 1 / gl });
  }
  if (variant !== "pool") {
    const sh = p.sensitivity.mixShift.value;
    add("device mix (flagship share)", `-${g3(sh)}`, `+${g3(sh)}`, { flagshipShareShift: -sh }, { flagshipShareShift: sh });
  }
  if (variant === "peak") {
    // Peak vs peak has no utilization or measured H100 figure to vary.
  } else if (isResNet50Like(w.flopsPerSample, p)) {
    const hs = p.sensitivity.h100MeasuredSpread.value;
    add("H100 rate (MLPerf)", `x${g3(1 + hs)}`, `x${g3(1 - hs)}`, { h100MeasuredScale: 1 + hs }, { h100MeasuredScale: 1 - hs });
  } else {
    const u = p.h100.utilization;
    add("H100 utilization", g3(u.high.value), g3(u.low.value), { utilization: u.high.value }, { utilization: u.low.value });
  }
  const ls = p.sensitivity.linkSpread.value;
  add("network", `links /${g3(ls)}`, "inputs on device", { linkScale: 1 / ls }, { localInput: true });
  const fleet = base.devices;
  add(
    "fleet size",
    fmtCount(fleet * p.sensitivity.fleetLowFraction.value),
    fmtCount(Math.max(fleet, p.fleet.smartphoneOwners.value)),
    { devices: fleet * p.sensitivity.fleetLowFraction.value },
    { devices: Math.max(fleet, p.fleet.smartphoneOwners.value) },
  );
  bars.sort((x, y) => y.swing - x.swing);
  return { variant, workload: w.label, baseline, bars };
}

// --- coordinators ------------------------------------------------------------------------

export interface CoordinatorNeed {
  activeDevices: number;
  shardSeconds: number;
  shardSecondsMeasured: boolean;
  /** active devices x rate / samples per shard, with samples per shard = rate x shard seconds. */
  fleetShardsPerSec: number;
  /** Highest shards/s this coordinator handled in any 1 s window. */
  capacityShardsPerSec: number;
  /** null when no capacity was measured. */
  coordinators: number | null;
}

/** Coordinators needed = fleet shards/s / measured coordinator shards/s. */
export function coordinatorsNeeded(devices: number, availability: number, shardSeconds: number, capacityShardsPerSec: number, measured: boolean): CoordinatorNeed {
  const active = devices * availability;
  const fleet = active / shardSeconds;
  return {
    activeDevices: active,
    shardSeconds,
    shardSecondsMeasured: measured,
    fleetShardsPerSec: fleet,
    capacityShardsPerSec,
    coordinators: capacityShardsPerSec > 0 ? Math.ceil(fleet / capacityShardsPerSec) : null,
  };
}

// --- workloads ---------------------------------------------------------------------------

function catalogInputBytes(name: string | null): number | null {
  if (name === null || !catalogNames().includes(name)) return null;
  try {
    const inputs = catalogModel(name).sampleInputs(1);
    return Object.values(inputs).reduce((acc, t) => acc + t.data.byteLength, 0);
  } catch {
    return null;
  }
}

/** The reference ResNet-50 workload plus every model a real job of this pool ran. */
export function workloads(data: ReportData, p: Profiles, rates: readonly WorkerModelRate[] = workerRates(data)): Workload[] {
  const perModel = new Map<string, number[]>();
  for (const r of rates) perModel.set(r.model, [...(perModel.get(r.model) ?? []), r.samplesPerSec]);
  const fromPool: Workload[] = [];
  let bestGflops: { gflops: number; name: string } | null = null;
  for (const m of data.models) {
    const rs = perModel.get(m.sha256);
    if (!rs || rs.length === 0 || m.flopsPerSample <= 0) continue;
    const med = median(rs);
    const gflops = (med * m.flopsPerSample) / 1e9;
    const label = modelLabel(data, m.sha256);
    if (bestGflops === null || gflops > bestGflops.gflops) bestGflops = { gflops, name: label };
    const bytes = catalogInputBytes(m.name);
    fromPool.push({
      key: m.sha256,
      label,
      flopsPerSample: m.flopsPerSample,
      inputBytes: bytes ?? p.network.inputBytesPerSample.value,
      inputBytesSource: bytes !== null ? "the catalog model's input tensors (measured from the model)" : "network.inputBytesPerSample",
      outputBytes: p.network.outputBytesPerSample.value,
      poolPerDeviceSamplesPerSec: med,
      poolRateNote: `median of ${rs.length} real worker(s) on ${label}`,
    });
  }
  const ref = p.models.resnet50Flops.value;
  const reference: Workload = {
    key: "resnet50",
    label: "ResNet-50 (reference workload)",
    flopsPerSample: ref,
    inputBytes: p.network.inputBytesPerSample.value,
    inputBytesSource: "network.inputBytesPerSample",
    outputBytes: p.network.outputBytesPerSample.value,
    poolPerDeviceSamplesPerSec: bestGflops ? (bestGflops.gflops * 1e9) / ref : null,
    poolRateNote: bestGflops
      ? `scaled by FLOPs from the median real worker's GFLOP/s on ${bestGflops.name} (the pool's most compute-efficient model)`
      : "this pool measured no real device",
  };
  return [reference, ...fromPool];
}

// --- verdict -----------------------------------------------------------------------------

/** Readable count: 1.15 million, 23,400, 0.42. */
export function fmtCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 1e12) return `${g3(n / 1e12)} trillion`;
  if (abs >= 1e9) return `${g3(n / 1e9)} billion`;
  if (abs >= 1e6) return `${g3(n / 1e6)} million`;
  if (abs >= 1000) return Math.round(Number(n.toPrecision(3))).toLocaleString("en-US");
  if (abs >= 1) return g3(n);
  if (abs === 0) return "0";
  return Number(n.toPrecision(2)).toString();
}

/** How an answer compares with the claim's one H100 per thousand devices. */
export function compareWithClaim(h100s: number, devices: number): string {
  const claim = devices / 1000;
  const ratio = h100s / claim;
  if (ratio >= 1 / 3 && ratio <= 3) return `${g3(ratio)}x the claim, within a factor of 3`;
  if (ratio > 3) return `${g3(ratio)}x the claim`;
  return `${g3(1 / ratio)}x short of the claim`;
}

export interface VerdictInput {
  devices: number;
  workload: Workload;
  peak: Extrapolation;
  measured: Extrapolation;
  pool: Extrapolation | null;
  tornado: Tornado | null;
  poolNow: PoolEquivalent | null;
  availability: number;
  sustained: number;
  redundancy: number;
  downlinkMbps: number;
}

/** The verdict paragraph; every number in it comes from the inputs. */
export function verdictText(v: VerdictInput): string {
  const claim = v.devices / 1000;
  const first = (e: Extrapolation) => e.ladder[0]?.h100s ?? Number.NaN;
  const beforeNet = (e: Extrapolation) => e.ladder[3]?.h100s ?? Number.NaN;
  const parts: string[] = [];
  parts.push(
    `Peak vs peak, ${fmtCount(v.devices)} phones come to ${fmtCount(first(v.peak))} H100s on ${v.workload.label} with every phone computing all the time ` +
      `(the claim says ${fmtCount(claim)}: ${compareWithClaim(first(v.peak), v.devices)}); ` +
      `counting availability ${g3(v.availability)}, sustained ${g3(v.sustained)} and redundancy ${g3(v.redundancy)}, ${fmtCount(beforeNet(v.peak))}.`,
  );
  parts.push(
    `Measured vs measured (MLPerf Mobile tiers against the H100's own result), the burst figure is ${fmtCount(first(v.measured))} H100s; ` +
      `with availability, sustained and redundancy it is ${fmtCount(beforeNet(v.measured))} (${compareWithClaim(beforeNet(v.measured), v.devices)}), ` +
      `and ${fmtCount(v.measured.h100s)} once every input must reach a phone over a ${g3(v.downlinkMbps)} Mbit/s link ` +
      `(${compareWithClaim(v.measured.h100s, v.devices)}).`,
  );
  if (v.pool) {
    parts.push(
      `At the per-device rate this pool measured with a portable runtime (${v.workload.poolRateNote}), the fleet is worth ${fmtCount(v.pool.h100s)} H100s ` +
        `(${compareWithClaim(v.pool.h100s, v.devices)}).`,
    );
  }
  const top = v.tornado?.bars[0];
  if (top && v.tornado) {
    const second = v.tornado.bars[1];
    parts.push(
      `The factor that moves the measured answer most is ${top.factor} (${top.lowLabel}: ${fmtCount(top.atLow)}; ${top.highLabel}: ${fmtCount(top.atHigh)})` +
        (second ? `, then ${second.factor} (${fmtCount(second.atLow)} to ${fmtCount(second.atHigh)}).` : "."),
    );
  }
  if (v.poolNow) {
    parts.push(
      `This pool itself, measured, is ${fmtCount(v.poolNow.h100Equivalents)} H100s on ${v.poolNow.modelName} (${v.poolNow.h100.method}).`,
    );
  }
  return parts.join(" ");
}
