/**
 * Device tiers for simulated (virtual) workers: each tier is an effective inference rate in
 * FLOP/s, meant for a model run through a portable runtime (ONNX Runtime on CPU or a generic
 * delegate), not a vendor-tuned NPU path.
 *
 * Derivation (figures from shared/CLAIM.md unless marked ASSUMPTION):
 *
 *   MLPerf Mobile MobileNetV4 offline: SD8 Gen 3 1,638 / SD7 Gen 3 331 / SD7s Gen 3 194 samples/s.
 *   ASSUMPTION: that benchmark runs MobileNetV4-Conv-L at 384x384, ~6.4 GMAC per image
 *     (timm model card; the MobileNetV4 paper gives 5.9G), i.e. ~12.8 GFLOP at 2 FLOP/MAC.
 *   Vendor-SDK rate (INT8 NPU): 1,638 x 12.8e9 = 21.0 TOP/s; 331 x 12.8e9 = 4.24; 194 x 12.8e9 = 2.48.
 *   Portable runtimes are 10-50x slower than the tuned NPU path (CLAIM.md, onnxruntime #7859).
 *   ASSUMPTION: the slow end of that range, 50x, because an edgepool worker runs plain
 *     ONNX Runtime with no vendor delegate.
 *   Effective: flagship 21.0e12 / 50 = 0.42 TFLOP/s, mid 4.24e12 / 50 = 85 GFLOP/s,
 *     low 2.48e12 / 50 = 50 GFLOP/s.
 *
 * A mix is written "flagship:0.2,mid:0.45,low:0.35" (the installed-base split from CLAIM.md,
 * itself an estimate); weights are normalised, so "flagship:1,low:1" is half and half.
 */
import { z } from "zod";
import { EdgepoolError } from "../../shared/errors.js";

const MOBILENETV4_L_FLOPS = 12.8e9;
const PORTABLE_RUNTIME_SLOWDOWN = 50;

/** The tiers, with their effective FLOP/s. Names hold no '-': the coordinator reads the tier from `virtual-<tier>-<i>`. */
export const TIERS = {
  flagship: { flopsPerSec: (1638 * MOBILENETV4_L_FLOPS) / PORTABLE_RUNTIME_SLOWDOWN, source: "MLPerf Mobile MobileNetV4, SD8 Gen 3, 1,638 samples/s, /50 for a portable runtime" },
  mid: { flopsPerSec: (331 * MOBILENETV4_L_FLOPS) / PORTABLE_RUNTIME_SLOWDOWN, source: "MLPerf Mobile MobileNetV4, SD7 Gen 3, 331 samples/s, /50 for a portable runtime" },
  low: { flopsPerSec: (194 * MOBILENETV4_L_FLOPS) / PORTABLE_RUNTIME_SLOWDOWN, source: "MLPerf Mobile MobileNetV4, SD7s Gen 3, 194 samples/s, /50 for a portable runtime" },
} as const satisfies Record<string, { flopsPerSec: number; source: string }>;

export type TierName = keyof typeof TIERS;
export const TIER_NAMES = Object.keys(TIERS) as TierName[];

export interface TierShare {
  tier: TierName;
  /** Fraction of the swarm, normalised so the shares sum to 1. */
  share: number;
  flopsPerSec: number;
}

function isTierName(s: string): s is TierName {
  return Object.hasOwn(TIERS, s);
}

const unknownTier = (name: string) =>
  `unknown device tier '${name}'; valid tiers: ${TIER_NAMES.join(", ")} (or a mix such as "flagship:0.2,mid:0.45,low:0.35")`;

/** Parses "flagship" or "flagship:0.2,mid:0.45,low:0.35" into normalised shares. */
export const ProfileMixSchema = z
  .string()
  .trim()
  .min(1, `give a tier (${TIER_NAMES.join(", ")}) or a mix such as "flagship:0.2,mid:0.45,low:0.35"`)
  .transform((raw, ctx): TierShare[] => {
    const parts = raw.split(",").map((p) => p.trim());
    const weights = new Map<TierName, number>();
    for (const part of parts) {
      const [name = "", weightText, extra] = part.split(":").map((s) => s.trim());
      if (extra !== undefined) {
        ctx.addIssue({ code: "custom", message: `'${part}' is not tier:weight` });
        return z.NEVER;
      }
      if (!isTierName(name)) {
        ctx.addIssue({ code: "custom", message: unknownTier(name) });
        return z.NEVER;
      }
      const weight = weightText === undefined ? 1 : Number(weightText);
      if (weightText === "" || !Number.isFinite(weight) || weight < 0) {
        ctx.addIssue({ code: "custom", message: `weight of '${name}' must be a non-negative number, got '${weightText}'` });
        return z.NEVER;
      }
      if (weights.has(name)) {
        ctx.addIssue({ code: "custom", message: `tier '${name}' is given twice` });
        return z.NEVER;
      }
      weights.set(name, weight);
    }
    const total = [...weights.values()].reduce((s, w) => s + w, 0);
    if (!(total > 0)) {
      ctx.addIssue({ code: "custom", message: "the weights of the mix sum to zero" });
      return z.NEVER;
    }
    return [...weights]
      .filter(([, w]) => w > 0)
      .map(([tier, w]) => ({ tier, share: w / total, flopsPerSec: TIERS[tier].flopsPerSec }));
  });

/** Parses a tier or a mix; an unknown tier is an E_CONFIG error that lists the valid ones. */
export function parseProfileMix(raw: string): TierShare[] {
  const r = ProfileMixSchema.safeParse(raw);
  if (!r.success) throw new EdgepoolError("E_CONFIG", `invalid --profile: ${r.error.issues[0]?.message ?? "invalid value"}`);
  return r.data;
}

/**
 * The tier of each of `count` workers: counts by largest remainder (so they sum to `count`),
 * interleaved so that any prefix of the swarm has about the same mix as the whole.
 */
export function assignTiers(mix: readonly TierShare[], count: number): TierName[] {
  const exact = mix.map((m) => m.share * count);
  const counts = exact.map(Math.floor);
  let left = count - counts.reduce((s, c) => s + c, 0);
  const byRemainder = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r);
  for (const { i } of byRemainder) {
    if (left <= 0) break;
    counts[i] = counts[i]! + 1;
    left -= 1;
  }
  // Stride scheduling: each slot goes to the tier furthest behind its share.
  const out: TierName[] = [];
  const given = mix.map(() => 0);
  for (let k = 0; k < count; k++) {
    let best = -1;
    let bestLag = -Infinity;
    mix.forEach((_, i) => {
      if (given[i]! >= counts[i]!) return;
      const lag = ((k + 1) * counts[i]!) / count - given[i]!;
      if (lag > bestLag) {
        bestLag = lag;
        best = i;
      }
    });
    given[best] = given[best]! + 1;
    out.push(mix[best]!.tier);
  }
  return out;
}
