/**
 * The shape of the reference figures: every figure carries its value, unit, kind (sourced,
 * assumed or measured) and source (a citation, the reasoning behind an assumption, or the
 * command that measured it). Bounds and orderings (low <= central <= high) are checked here,
 * so a profile that parses is one the arithmetic can use.
 */
import { z } from "zod";

export const FigureKindSchema = z.enum(["sourced", "assumed", "measured"]);
export type FigureKind = z.infer<typeof FigureKindSchema>;

export const FigureSchema = z.object({
  value: z.number().finite(),
  unit: z.string(),
  kind: FigureKindSchema,
  source: z.string().min(1),
});
export type Figure = z.infer<typeof FigureSchema>;

/** A figure whose value must lie in [min, max]. */
function figure(min = 0, max = Number.POSITIVE_INFINITY) {
  return FigureSchema.extend({
    value: z
      .number()
      .finite()
      .min(min, { message: `must be >= ${min}` })
      .max(max, { message: `must be <= ${max}` }),
  });
}
const positive = () =>
  FigureSchema.extend({ value: z.number().finite().positive({ message: "must be > 0" }) });
const fraction = () => figure(0, 1);

const PrecisionPeaksSchema = z.strictObject({
  fp32: positive(),
  tf32: positive(),
  fp16: positive(),
  fp8: positive(),
  int8: positive(),
});

const PhoneTierSchema = z.strictObject({
  /** Peak NPU throughput, INT8. */
  npuTops: positive(),
  /** Peak GPU throughput, FP32. */
  gpuTflops: positive(),
  /** MLPerf Mobile MobileNetV4 offline samples/s of a representative chip. */
  mlperfSamplesPerSec: positive(),
  /** Share of the installed base. */
  share: fraction(),
});

const FractionRangeSchema = z.strictObject({ low: fraction(), central: fraction(), high: fraction() });

export const ProfilesSchema = z
  .strictObject({
    h100: z.strictObject({
      sxm: PrecisionPeaksSchema,
      pcie: PrecisionPeaksSchema,
      memoryBandwidth: positive(),
      power: positive(),
      priceLow: positive(),
      priceHigh: positive(),
      /** MLPerf Inference measured results, 1x H100 SXM. */
      resnet50SamplesPerSec: positive(),
      bert99SamplesPerSec: positive(),
      matmulBf16Measured: positive(),
      /** Fraction of peak an H100 sustains on real work (peak-based comparisons). */
      utilization: FractionRangeSchema,
    }),
    models: z.strictObject({
      resnet50Flops: positive(),
      mobilenetV4Flops: positive(),
      /** How close a model's FLOPs must be to ResNet-50's to use the MLPerf ResNet-50 result. */
      resnet50Tolerance: fraction(),
    }),
    phones: z.strictObject({
      flagship: PhoneTierSchema,
      mid: PhoneTierSchema,
      low: PhoneTierSchema,
      sd8EliteMlperfSamplesPerSec: positive(),
      appleNpuTops: positive(),
    }),
    fleet: z.strictObject({ devices: positive(), smartphoneOwners: positive() }),
    availability: FractionRangeSchema,
    sustained: FractionRangeSchema,
    redundancy: z.strictObject({ central: figure(1), untrusted: figure(1), high: figure(1) }),
    network: z.strictObject({
      downlinkMbps: positive(),
      uplinkMbps: positive(),
      inputBytesPerSample: positive(),
      outputBytesPerSample: positive(),
    }),
    runtime: z.strictObject({ portableGapLow: figure(1), portableGapHigh: figure(1) }),
    sensitivity: z.strictObject({
      tierRateSpread: figure(0, 0.99),
      mixShift: fraction(),
      linkSpread: figure(1),
      fleetLowFraction: fraction(),
      h100MeasuredSpread: figure(0, 0.99),
    }),
    coordinator: z.strictObject({ shardSeconds: positive() }),
    context: z.strictObject({
      foldingAtHomeEflops: positive(),
      foldingAtHomeDevices: positive(),
      boincPflops: positive(),
      boincDevices: positive(),
      setiTflops: positive(),
      setiHosts: positive(),
    }),
  })
  .superRefine((p, ctx) => {
    const ordered = (name: string, r: { low: Figure; central: Figure; high: Figure }) => {
      if (!(r.low.value <= r.central.value && r.central.value <= r.high.value)) {
        ctx.addIssue({ code: "custom", path: [name], message: `${name}: low <= central <= high must hold` });
      }
    };
    ordered("availability", p.availability);
    ordered("sustained", p.sustained);
    ordered("h100.utilization", p.h100.utilization);
    if (p.redundancy.central.value > p.redundancy.high.value) {
      ctx.addIssue({ code: "custom", path: ["redundancy", "high"], message: "redundancy.high must be >= redundancy.central" });
    }
    if (p.runtime.portableGapLow.value > p.runtime.portableGapHigh.value) {
      ctx.addIssue({ code: "custom", path: ["runtime", "portableGapHigh"], message: "runtime.portableGapHigh must be >= portableGapLow" });
    }
    const shares = p.phones.flagship.share.value + p.phones.mid.share.value + p.phones.low.share.value;
    if (shares <= 0) ctx.addIssue({ code: "custom", path: ["phones"], message: "tier shares must not all be 0" });
  });
export type Profiles = z.infer<typeof ProfilesSchema>;
