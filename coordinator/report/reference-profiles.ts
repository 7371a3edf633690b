/**
 * The reference figures the report sets beside its own measurements: H100 peaks and MLPerf
 * results, phone tiers, fleet size, availability, throttling, redundancy, network. Every
 * figure carries its value, unit, kind (sourced, assumed or measured) and source (a citation,
 * the reasoning behind an assumption, or the command that measured it).
 *
 * Defaults come from CLAIM.md. A JSON file may replace any subset (deep-merged) and
 * `--set dotted.path=number` overrides replace single values; either way the figure then
 * counts as an assumption unless the file names its own kind and source.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { EdgepoolError } from "../../shared/errors.js";

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

const s = (value: number, unit: string, source: string): Figure => ({ value, unit, kind: "sourced", source });
const a = (value: number, unit: string, source: string): Figure => ({ value, unit, kind: "assumed", source });

const SXM = "NVIDIA H100 datasheet, SXM, dense (sparse figures are 2x)";
const PCIE = "NVIDIA H100 PCIe product brief, dense";
const MLPERF_MOBILE = "MLPerf Mobile v4.0/v5.0 (mlcommons/mobile_results_v4.0, v5.0), MobileNetV4 offline";
const TIER_PEAK = "assumed: flagship NPU peak x (this tier's MLPerf MobileNetV4 rate / flagship's); vendors publish no phone TOPS for these chips";

/** The figures from CLAIM.md, with their sources. */
export const DEFAULT_PROFILES: Profiles = {
  h100: {
    sxm: {
      fp32: s(67, "TFLOPS", SXM),
      tf32: s(495, "TFLOPS", SXM),
      fp16: s(989, "TFLOPS", `${SXM}; BF16 and FP16 are the same`),
      fp8: s(1979, "TFLOPS", SXM),
      int8: s(1979, "TOPS", SXM),
    },
    pcie: {
      fp32: s(51, "TFLOPS", PCIE),
      tf32: s(378, "TFLOPS", PCIE),
      fp16: s(756, "TFLOPS", `${PCIE}; BF16 and FP16 are the same`),
      fp8: s(1513, "TFLOPS", PCIE),
      int8: s(1513, "TOPS", PCIE),
    },
    memoryBandwidth: s(3.35, "TB/s", "NVIDIA H100 datasheet, SXM"),
    power: s(700, "W", "NVIDIA H100 datasheet, SXM"),
    priceLow: s(25_000, "USD", "press reports 2023-2024"),
    priceHigh: s(40_000, "USD", "press reports 2023-2024"),
    resnet50SamplesPerSec: s(
      88_714,
      "samples/s",
      "MLPerf Inference v4.0, closed/NVIDIA, DGX-H100_H100-SXM-80GBx1_TRT, resnet50 Offline (TensorRT INT8)",
    ),
    bert99SamplesPerSec: s(9_082, "samples/s", "MLPerf Inference v4.0, closed/NVIDIA, DGX-H100_H100-SXM-80GBx1_TRT, bert-99 Offline"),
    matmulBf16Measured: s(790, "TFLOP/s", "8192^3 BF16 matmul with PyTorch on an H100 (CLAIM.md: ~790-800)"),
    utilization: {
      low: s(0.38, "fraction of peak", "Meta, The Llama 3 Herd of Models (2024): 38-43% BF16 MFU on H100 at scale"),
      central: a(0.4, "fraction of peak", "assumed: within the Llama 3 paper's 38-43% H100 utilization"),
      high: s(0.43, "fraction of peak", "Meta, The Llama 3 Herd of Models (2024): 38-43% BF16 MFU on H100 at scale"),
    },
  },
  models: {
    resnet50Flops: s(8.2e9, "FLOP/sample", "ResNet paper / common model cards: ~4.1 GMAC per 224x224 image"),
    mobilenetV4Flops: a(
      11.8e9,
      "FLOP/sample",
      "assumed: ~5.9 GMAC for MobileNetV4-Conv-L at 384x384 (MobileNetV4 paper, Qin et al. 2024); used to scale MLPerf Mobile rates to other models by FLOPs",
    ),
    resnet50Tolerance: a(0.1, "relative", "assumed: a model within 10% of ResNet-50's FLOPs is compared with the MLPerf ResNet-50 result"),
  },
  phones: {
    flagship: {
      npuTops: s(45, "TOPS", "Snapdragon 8 Gen 3 / 8 Elite NPU, secondary sources (Qualcomm publishes none for phones): estimate"),
      gpuTflops: s(3, "TFLOPS", "spec aggregators: flagship Android GPU FP32 2-4 TFLOPS (A17 Pro ~2.1)"),
      mlperfSamplesPerSec: s(1638, "samples/s", `${MLPERF_MOBILE}, Snapdragon 8 Gen 3`),
      share: a(0.2, "fraction of installed base", "estimate: ~20% flagship / 45% mid / 35% low"),
    },
    mid: {
      npuTops: a(9.1, "TOPS", TIER_PEAK),
      gpuTflops: s(0.5, "TFLOPS", "spec aggregators: mid-range Adreno GPU FP32 ~0.5 TFLOPS"),
      mlperfSamplesPerSec: s(331, "samples/s", `${MLPERF_MOBILE}, Snapdragon 7 Gen 3`),
      share: a(0.45, "fraction of installed base", "estimate: ~20% flagship / 45% mid / 35% low"),
    },
    low: {
      npuTops: a(5.3, "TOPS", TIER_PEAK),
      gpuTflops: a(0.2, "TFLOPS", "assumed: below the ~0.5 TFLOPS of a mid-range Adreno"),
      mlperfSamplesPerSec: s(194, "samples/s", `${MLPERF_MOBILE}, Snapdragon 7s Gen 3`),
      share: a(0.35, "fraction of installed base", "estimate: ~20% flagship / 45% mid / 35% low"),
    },
    sd8EliteMlperfSamplesPerSec: s(2005, "samples/s", "MLPerf Mobile v5.0, closed/Qualcomm, SD8Elite, MobileNetV4-L offline"),
    appleNpuTops: s(35, "TOPS", "Apple announcements: A17 Pro / A18 Pro Neural Engine, INT8"),
  },
  fleet: {
    devices: a(1e9, "devices", "the claim: a billion phones"),
    smartphoneOwners: s(4.3e9, "people", "GSMA Mobile Internet Connectivity 2023"),
  },
  availability: {
    low: a(0.1, "fraction of day", "estimate: idle AND charging AND unmetered (Bonawitz et al. 2019 eligibility), 0.1-0.3"),
    central: a(0.2, "fraction of day", "assumed: middle of the 0.1-0.3 estimate"),
    high: a(0.3, "fraction of day", "estimate: idle AND charging AND unmetered (Bonawitz et al. 2019 eligibility), 0.1-0.3"),
  },
  sustained: {
    low: s(0.5, "fraction of burst", "GPU stress-test reviews, on-device LLM studies 2025-2026: -22% to -50% after minutes"),
    central: a(0.65, "fraction of burst", "assumed: middle of the -22% to -50% sustained-load drop"),
    high: s(0.78, "fraction of burst", "GPU stress-test reviews, on-device LLM studies 2025-2026: -22% to -50% after minutes"),
  },
  redundancy: {
    central: a(1, "copies per shard", "assumed: trusted devices, each shard computed once"),
    untrusted: a(2, "copies per shard", "assumed: untrusted devices, each shard computed twice and compared"),
    high: a(3, "copies per shard", "assumed: majority vote over three copies"),
  },
  network: {
    downlinkMbps: s(36, "Mbit/s", "Ookla Speedtest Global Index (2020-2022), global median mobile download"),
    uplinkMbps: s(11, "Mbit/s", "Ookla Speedtest Global Index (2020-2022), global median mobile upload"),
    inputBytesPerSample: a(150_528, "bytes", "assumed: one 224x224x3 uint8 image, the ResNet-50 input, sent raw"),
    outputBytesPerSample: a(4_000, "bytes", "assumed: 1,000 float32 logits"),
  },
  runtime: {
    portableGapLow: s(10, "x slower", "onnxruntime issue #7859 and similar: ONNX Runtime CPU/NNAPI 10-50x slower than a tuned NPU path"),
    portableGapHigh: s(50, "x slower", "onnxruntime issue #7859 and similar: ONNX Runtime CPU/NNAPI 10-50x slower than a tuned NPU path"),
  },
  sensitivity: {
    tierRateSpread: a(0.5, "relative", "assumed: per-tier rates +-50% (chips within a tier differ that much)"),
    mixShift: a(0.1, "share", "assumed: flagship share +-10 points, taken from or given to low-end (premium is 25% of new sales, Counterpoint 2024)"),
    linkSpread: a(4, "x", "assumed: links 4x slower than the median at the low end"),
    fleetLowFraction: a(0.5, "fraction of devices", "assumed: half the claimed fleet at the low end; all smartphone owners at the high end"),
    h100MeasuredSpread: a(0.1, "relative", "assumed: +-10% between MLPerf submissions and rounds"),
  },
  coordinator: {
    shardSeconds: a(0.3, "s", "assumed: the planner's target shard duration (a few hundred ms), used when no shard was measured"),
  },
  context: {
    foldingAtHomeEflops: s(2.4, "EFLOPS", "Folding@home peak, April 2020, project announcements and press"),
    foldingAtHomeDevices: s(1e6, "devices", "Folding@home, April 2020: more than 1 million devices, mostly GPUs"),
    boincPflops: s(93, "PFLOPS", "Anderson, Journal of Grid Computing 18 (2020)"),
    boincDevices: s(7e5, "devices", "Anderson, Journal of Grid Computing 18 (2020)"),
    setiTflops: s(60, "TFLOPS", "Anderson and Fedak 2006"),
    setiHosts: s(3.3e5, "hosts", "Anderson and Fedak 2006"),
  },
};

function isFigure(v: unknown): v is Figure {
  return typeof v === "object" && v !== null && "value" in v && "unit" in v && "kind" in v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Every figure in a profile set, as [dotted path, figure], in declaration order. */
export function listFigures(p: Profiles): Array<[string, Figure]> {
  const out: Array<[string, Figure]> = [];
  const walk = (node: unknown, prefix: string): void => {
    if (isFigure(node)) {
      out.push([prefix, node]);
      return;
    }
    if (!isRecord(node)) return;
    for (const [k, v] of Object.entries(node)) walk(v, prefix ? `${prefix}.${k}` : k);
  };
  walk(p, "");
  return out;
}

/** Valid figure paths that start with the deepest existing prefix of `bad`. */
function pathsNear(bad: string): string[] {
  const all = listFigures(DEFAULT_PROFILES).map(([p]) => p);
  const parts = bad.split(".");
  for (let n = parts.length - 1; n > 0; n--) {
    const prefix = parts.slice(0, n).join(".") + ".";
    const near = all.filter((p) => p.startsWith(prefix));
    if (near.length > 0) return near;
  }
  return [...new Set(all.map((p) => p.split(".")[0] ?? p))];
}

function unknownPath(where: string, bad: string): EdgepoolError {
  return new EdgepoolError("E_CONFIG", `${where}: unknown figure "${bad}"; valid here: ${pathsNear(bad).join(", ")}`);
}

function cloneProfiles(p: Profiles): Profiles {
  return structuredClone(p);
}

/** Finds the figure at a dotted path in `root`, or undefined. */
function figureAt(root: Profiles, dotted: string): Figure | undefined {
  let node: unknown = root;
  for (const part of dotted.split(".")) {
    if (!isRecord(node) || isFigure(node) || !Object.hasOwn(node, part)) return undefined;
    node = node[part];
  }
  return isFigure(node) ? node : undefined;
}

/** Merges a parsed profiles file into `target`, naming the first bad key it meets. */
function mergeFile(target: Profiles, file: unknown, label: string): void {
  if (!isRecord(file)) throw new EdgepoolError("E_CONFIG", `${label}: expected a JSON object of figures`);
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(node)) {
      const dotted = prefix ? `${prefix}.${k}` : k;
      const fig = figureAt(target, dotted);
      if (fig) {
        if (typeof v === "number") {
          if (!Number.isFinite(v)) throw new EdgepoolError("E_CONFIG", `${label}: "${dotted}" must be a finite number`);
          Object.assign(fig, { value: v, kind: "assumed", source: `overridden by ${label}` });
          continue;
        }
        const parsed = FigureSchema.partial().strict().safeParse(v);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const at = issue && issue.path.length > 0 ? `${dotted}.${issue.path.join(".")}` : dotted;
          throw new EdgepoolError("E_CONFIG", `${label}: "${at}": ${issue?.message ?? "invalid figure"} (give a number or { value, unit, kind, source })`);
        }
        const f = parsed.data;
        if (f.value !== undefined) {
          fig.value = f.value;
          fig.kind = f.kind ?? "assumed";
          fig.source = f.source ?? `overridden by ${label}`;
        } else {
          if (f.kind !== undefined) fig.kind = f.kind;
          if (f.source !== undefined) fig.source = f.source;
        }
        if (f.unit !== undefined) fig.unit = f.unit;
        continue;
      }
      const isGroup = listFigures(target).some(([p]) => p.startsWith(`${dotted}.`));
      if (!isGroup) throw unknownPath(label, dotted);
      if (!isRecord(v)) throw new EdgepoolError("E_CONFIG", `${label}: "${dotted}" is a group of figures; give an object`);
      walk(v, dotted);
    }
  };
  walk(file, "");
}

/** Applies one "dotted.path=number" override to `target`. */
function applyOverride(target: Profiles, spec: string): void {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new EdgepoolError("E_CONFIG", `override "${spec}": expected dotted.path=number, e.g. fleet.devices=2e9`);
  const key = spec.slice(0, eq).trim();
  const raw = spec.slice(eq + 1).trim();
  const fig = figureAt(target, key);
  if (!fig) throw unknownPath(`override "${spec}"`, key);
  const value = raw === "" ? Number.NaN : Number(raw);
  if (!Number.isFinite(value)) throw new EdgepoolError("E_CONFIG", `override "${spec}": "${raw}" is not a number (for ${key}, in ${fig.unit})`);
  Object.assign(fig, { value, kind: "assumed", source: "overridden on the command line" });
}

function validate(p: Profiles, label: string): Profiles {
  const parsed = ProfilesSchema.safeParse(p);
  if (parsed.success) return parsed.data;
  const msgs = parsed.error.issues.map((i) => {
    const at = i.path.filter((x) => x !== "value").join(".");
    return `${at}: ${i.message}`;
  });
  throw new EdgepoolError("E_CONFIG", `${label}: ${msgs.join("; ")}`);
}

/**
 * The reference figures: defaults, then a JSON file (any subset, deep-merged), then
 * "dotted.path=number" overrides in order. Throws E_CONFIG naming the bad key.
 */
export async function loadProfiles(opts: { file?: string; overrides?: string[] } = {}): Promise<Profiles> {
  const p = cloneProfiles(DEFAULT_PROFILES);
  if (opts.file !== undefined) {
    const label = path.basename(opts.file);
    let text: string;
    try {
      text = await readFile(opts.file, "utf8");
    } catch (err) {
      throw new EdgepoolError("E_CONFIG", `cannot read profiles file ${opts.file}: ${(err as Error).message}`, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new EdgepoolError("E_CONFIG", `profiles file ${opts.file} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    mergeFile(p, json, label);
    validate(p, label);
  }
  for (const o of opts.overrides ?? []) applyOverride(p, o);
  return validate(p, "reference figures");
}

/** The same as loadProfiles, for callers that already hold the parsed file. */
export function profilesFrom(opts: { fileJson?: unknown; fileLabel?: string; overrides?: string[] } = {}): Profiles {
  const p = cloneProfiles(DEFAULT_PROFILES);
  if (opts.fileJson !== undefined) {
    const label = opts.fileLabel ?? "profiles file";
    mergeFile(p, opts.fileJson, label);
    validate(p, label);
  }
  for (const o of opts.overrides ?? []) applyOverride(p, o);
  return validate(p, "reference figures");
}
