/**
 * What the extrapolation's answer says and how far it can move: the sensitivity tornado (one
 * factor at a time at its bounds), the comparison with the claim's one H100 per thousand
 * devices, and the verdict paragraph. Numbers are worded here, once, for both.
 */
import type { Profiles } from "./reference-profiles.js";
import { type Extrapolation, type Knobs, type Variant, type Workload, centralKnobs, extrapolate, scenarioParams } from "./extrapolation.js";
import { type PoolEquivalent, isResNet50Like } from "./h100-rate.js";

const g3 = (x: number) => Number(x.toPrecision(3)).toString();

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
