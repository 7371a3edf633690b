/**
 * The report's extrapolation section: the fleet of N devices on the head workload under each
 * variant, factor by factor; every workload; coordinators needed; and the comparison with
 * what volunteer computing delivered.
 */
import {
  type Extrapolation,
  type Variant,
  type Workload,
  VARIANT_LABELS,
  compareWithClaim,
  coordinatorsNeeded,
  extrapolateWorkload,
  fmtCount,
  h100SamplesPerSec,
} from "./claim.js";
import type { Profiles } from "./reference-profiles.js";
import type { ReportData } from "./report-data.js";
import { type ReportOut, fmtValue, g3, table } from "./render-markdown.js";
import { barChart } from "./svg.js";

/** "## The billion-device extrapolation", for `head` (the first workload) and then every workload. */
export function extrapolationSection(
  out: ReportOut,
  x: {
    data: ReportData;
    p: Profiles;
    devices: number;
    wls: readonly Workload[];
    head: Workload;
    /** Each variant's extrapolation of `head`; null where the variant has no rate. */
    ex: Record<Variant, Extrapolation | null>;
    shardSec: number | null;
  },
): void {
  const { md, charts } = out;
  const { p, devices, wls, head, ex, shardSec } = x;
  const c = x.data.coordinator;
  md.push(`## The billion-device extrapolation`, "");
  md.push(
    `For ${fmtCount(devices)} devices on ${head.label} (${g3(head.flopsPerSample / 1e9)} GFLOP/sample):`,
    "",
    "H100s = devices x sum over tiers (share x rate x sustained x network) x availability / redundancy / H100 rate.",
    "",
  );
  md.push("### Device mix", "");
  const scale = p.models.mobilenetV4Flops.value / head.flopsPerSample;
  const tierNames = ["flagship", "mid", "low"] as const;
  const measuredTiers = ex.measured?.tiers ?? [];
  md.push(
    table(
      ["tier", "share", "NPU INT8 TOPS", "GPU FP32 TFLOPS", "MLPerf MobileNetV4 samples/s", `scaled to ${head.label} samples/s`, "network factor (measured variant)"],
      tierNames.map((t, i) => [
        t,
        g3(p.phones[t].share.value),
        g3(p.phones[t].npuTops.value),
        g3(p.phones[t].gpuTflops.value),
        fmtValue(p.phones[t].mlperfSamplesPerSec.value),
        g3(p.phones[t].mlperfSamplesPerSec.value * scale),
        g3(measuredTiers[i]?.networkFactor ?? Number.NaN),
      ]),
    ),
    "",
    `MLPerf rates are scaled by FLOPs: x ${g3(scale)} (\`models.mobilenetV4Flops\` / FLOPs per sample). ` +
      `Availability \`availability.central\` = ${g3(p.availability.central.value)}, sustained \`sustained.central\` = ${g3(p.sustained.central.value)}, ` +
      `redundancy \`redundancy.central\` = ${g3(p.redundancy.central.value)} (${g3(p.redundancy.untrusted.value)} for untrusted devices). ` +
      `Network: ${g3(p.network.downlinkMbps.value)} Mbit/s down, ${g3(p.network.uplinkMbps.value)} Mbit/s up per device, ${fmtCount(head.inputBytes)} bytes in and ${fmtCount(head.outputBytes)} bytes out per sample; ` +
      "network factor = min(1, link bytes/s / (bytes per sample x sustained device rate)).",
    "",
  );

  md.push("### Both variants, factor by factor", "");
  const variants: Variant[] = ["peak", "measured", "pool"];
  const present = variants.filter((v) => ex[v] !== null);
  const steps = ex.peak?.ladder.map((s) => s.step) ?? [];
  md.push(
    table(
      ["step", ...present.map((v) => VARIANT_LABELS[v])],
      steps.map((s, i) => [s, ...present.map((v) => fmtCount(ex[v]?.ladder[i]?.h100s ?? Number.NaN))]),
    ),
    "",
  );
  const peakH100 = (p.h100.sxm.int8.value * 1e12) / head.flopsPerSample;
  const headH100 = h100SamplesPerSec(head.flopsPerSample, p);
  md.push(
    `H100 rate: peak variant ${fmtCount(peakH100)} samples/s (\`h100.sxm.int8\`, peak); measured variants ${fmtCount(headH100.samplesPerSec)} samples/s (${headH100.method}). ` +
      `This pool's per-device rate: ${head.poolRateNote}.`,
    "",
  );
  charts["extrapolation.svg"] = barChart(
    `${fmtCount(devices)} devices on ${head.label}, in H100s`,
    [
      { label: "the claim", value: devices / 1000, valueLabel: fmtCount(devices / 1000) },
      ...present.flatMap((v) => {
        const e = ex[v]!;
        const raw = e.ladder[0]?.h100s ?? Number.NaN;
        return [
          { label: `${v}: always on`, value: raw, valueLabel: fmtCount(raw) },
          { label: `${v}: all factors`, value: e.h100s, valueLabel: fmtCount(e.h100s) },
        ];
      }),
    ],
    { unit: "H100-equivalents (linear scale)" },
  );
  md.push("![Extrapolation in H100s](extrapolation.svg)", "");

  md.push("### Every workload", "");
  md.push(
    table(
      ["workload", "GFLOP/sample", "input bytes", "H100 rate is", "peak vs peak", "measured (MLPerf tiers)", "this pool's devices", "vs the claim (measured)"],
      wls.map((w) => {
        const pk = extrapolateWorkload(p, w, "peak", devices);
        const me = extrapolateWorkload(p, w, "measured", devices);
        const po = extrapolateWorkload(p, w, "pool", devices);
        return [
          w.label,
          g3(w.flopsPerSample / 1e9),
          `${fmtCount(w.inputBytes)} (${w.inputBytesSource})`,
          h100SamplesPerSec(w.flopsPerSample, p).method,
          fmtCount(pk?.h100s ?? Number.NaN),
          fmtCount(me?.h100s ?? Number.NaN),
          po ? fmtCount(po.h100s) : "not measured",
          me ? compareWithClaim(me.h100s, devices) : "n/a",
        ];
      }),
    ),
    "",
  );

  const coord = coordinatorsNeeded(devices, p.availability.central.value, shardSec ?? p.coordinator.shardSeconds.value, c.peakShardsPerSec, shardSec !== null);
  md.push("### Coordinators needed", "");
  md.push(
    `${fmtCount(coord.activeDevices)} devices active at once (devices x availability), each finishing a shard every ${g3(coord.shardSeconds)} s ` +
      `(${coord.shardSecondsMeasured ? "measured mean" : "`coordinator.shardSeconds`, assumed"}), make ${fmtCount(coord.fleetShardsPerSec)} shards/s. ` +
      (coord.coordinators === null
        ? "This coordinator's capacity was not measured (no shard ran), so the count of coordinators is unknown."
        : `At the ${g3(coord.capacityShardsPerSec)} shards/s this coordinator handled at peak, that is ${fmtCount(coord.coordinators)} coordinators (an upper bound, since the peak is a lower bound on capacity).`),
    "",
  );
  const fah = (p.context.foldingAtHomeEflops.value * 1e18) / (p.h100.sxm.fp16.value * 1e12);
  const boinc = (p.context.boincPflops.value * 1e15) / (p.h100.sxm.fp16.value * 1e12);
  md.push("### Beside what volunteer computing delivered", "");
  md.push(
    `Folding@home's record, ${g3(p.context.foldingAtHomeEflops.value)} EFLOPS from ${fmtCount(p.context.foldingAtHomeDevices.value)} devices, is ${fmtCount(fah)} H100s of dense FP16 peak; ` +
      `BOINC's ${g3(p.context.boincPflops.value)} PFLOPS from ${fmtCount(p.context.boincDevices.value)} devices is ${fmtCount(boinc)}; ` +
      `SETI@home sustained ${g3(p.context.setiTflops.value)} TFLOPS from ${fmtCount(p.context.setiHosts.value)} hosts. ` +
      `The measured extrapolation above (${fmtCount(ex.measured?.h100s ?? Number.NaN)} H100s) is ${g3((ex.measured?.h100s ?? Number.NaN) / fah)}x the largest volunteer pool ever run.`,
    "",
  );
}
