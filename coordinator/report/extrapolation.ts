/**
 * The pool extrapolated to N devices, for one workload M (CLAIM.md):
 *
 *   H100s = devices x sum_tier(share x rate x sustained x network) x availability / k / H100_rate(M)
 *
 * computed for three variants: peak vs peak (phone NPU INT8 TOPS against H100 INT8 TOPS),
 * measured vs measured (MLPerf Mobile tier rates against the MLPerf H100 result where one
 * exists, else H100 peak x an assumed utilization), and this pool's own per-device rate
 * against the same H100 rate. Also: the workloads it is computed for, and how many
 * coordinators such a fleet needs.
 */
import { catalogModel, catalogNames } from "../../shared/onnx/catalog.js";
import type { ReportData } from "./report-data.js";
import type { Profiles } from "./reference-profiles.js";
import { h100SamplesPerSec } from "./h100-rate.js";
import { type WorkerModelRate, median, modelLabel, workerRates } from "./measured-rates.js";

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
