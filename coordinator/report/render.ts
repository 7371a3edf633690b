/**
 * Turns a coordinator's measurements and the reference figures into report.md plus SVG
 * charts. Simulated (virtual) workers appear only in their own subsection.
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  type Extrapolation,
  type Variant,
  VARIANT_LABELS,
  compareWithClaim,
  coordinatorsNeeded,
  extrapolateWorkload,
  fmtCount,
  h100SamplesPerSec,
  measuredShardSeconds,
  poolEfficiency,
  poolInH100s,
  tornado,
  verdictText,
  virtualSummary,
  workerRates,
  workloads,
} from "./claim.js";
import { type Profiles, listFigures } from "./reference-profiles.js";
import type { ReportData } from "./report-data.js";
import { type Series, barChart, lineChart, tornadoChart } from "./svg.js";

export interface RenderOptions {
  /** The command that reproduces this report. */
  command: string;
  /** Fleet size for the extrapolation; defaults to fleet.devices. */
  devices?: number;
  /** Optional measured throughput against worker count, drawn as a line chart. */
  scaling?: Series[];
}

export interface RenderedReport {
  markdown: string;
  /** File name (e.g. "tornado.svg") to SVG text. */
  charts: Record<string, string>;
}

const g3 = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(3)).toString() : "n/a");
const pct = (x: number | null) => (x === null || !Number.isFinite(x) ? "n/a" : `${(x * 100).toFixed(0)}%`);
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`)].join("\n");
}

function fmtValue(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
  return v.toLocaleString("en-US", { maximumSignificantDigits: 6 });
}

const SIMULATED_NOTE = "simulated, excluded from every real-device figure";

/** report.md and its charts, from measured data and reference figures. */
export function renderReport(data: ReportData, profiles: Profiles, opts: RenderOptions): RenderedReport {
  const p = profiles;
  const devices = opts.devices ?? p.fleet.devices.value;
  const rates = workerRates(data);
  const eff = poolEfficiency(data, rates);
  const poolNow = poolInH100s(data, p);
  const wls = workloads(data, p, rates);
  const virt = virtualSummary(data);
  const charts: Record<string, string> = {};
  const md: string[] = [];
  const measuredSource = `measured: ${opts.command}`;

  md.push("# edgepool report: is a billion phones a million H100s?", "");
  md.push(
    `Generated ${new Date(data.generatedAt).toISOString()} from coordinator ${data.coordinator.url} (edgepool ${data.coordinator.version}). ` +
      `The claim: the compute of ${fmtCount(p.fleet.devices.value)} phones roughly equals ${fmtCount(p.fleet.devices.value / 1000)} H100s. ` +
      "Every figure below is labelled measured, sourced or assumed; see Figures and sources.",
    "",
  );

  // --- Measured ---
  md.push("## Measured", "");
  md.push("### Per-worker rates (real devices)", "");
  md.push("samples/s = samples / ((compute ms + CPU-cap idle ms) / 1000); GFLOP/s = samples/s x FLOPs per sample.", "");
  if (rates.length === 0) {
    md.push("No real worker ran a shard.", "");
  } else {
    md.push(
      table(
        ["worker", "model", "shards", "samples", "busy s", "samples/s", "GFLOP/s"],
        rates.map((r) => [r.workerName, r.modelName, String(r.shards), String(r.samples), g3(r.seconds), g3(r.samplesPerSec), g3(r.gflopsPerSec)]),
      ),
      "",
    );
    charts["per-worker.svg"] = barChart(
      "Real workers: GFLOP/s per model (measured)",
      rates.map((r) => ({ label: `${r.workerName} / ${r.modelName}`, value: r.gflopsPerSec, valueLabel: `${g3(r.gflopsPerSec)} GFLOP/s` })),
      { unit: "GFLOP/s while busy" },
    );
    md.push("![Real workers: GFLOP/s per model](per-worker.svg)", "");
  }

  md.push("### Pool efficiency", "");
  md.push("Job samples/s (rows / wall time) divided by the sum of the individual samples/s of the real workers that ran the model.", "");
  if (eff.length === 0) md.push("No real job finished with a measured rate.", "");
  else
    md.push(
      table(
        ["job", "model", "state", "rows", "wall s", "job samples/s", "sum of workers' samples/s", "workers", "efficiency"],
        eff.map((e) => [e.jobId, e.modelName, e.state, String(e.rows), e.wallSec === null ? "n/a" : g3(e.wallSec), g3(e.samplesPerSec), g3(e.sumWorkerSamplesPerSec), String(e.workers), pct(e.efficiency)]),
      ),
      "",
    );

  const c = data.coordinator;
  const shardSec = measuredShardSeconds(data);
  md.push("### Coordinator capacity", "");
  md.push(
    table(
      ["figure", "value"],
      [
        ["host", `${c.host.cpuModel}, ${c.host.cpus} CPUs, ${c.host.platform}/${c.host.arch}`],
        ["peak connected workers", String(c.peakConnectedWorkers)],
        ["peak shards/s (any 1 s window)", g3(c.peakShardsPerSec)],
        ["resident memory", `${g3(c.rssBytes / 2 ** 20)} MiB`],
        ["mean busy seconds per shard (real workers)", shardSec === null ? "not measured" : g3(shardSec)],
      ],
    ),
    "",
    "Peak shards/s is the most this coordinator was asked to handle, so it is a lower bound on its capacity.",
    "",
  );
  if (opts.scaling && opts.scaling.length > 0) {
    charts["scaling.svg"] = lineChart("Pool throughput against workers (measured)", opts.scaling, { xLabel: "workers", yLabel: "samples/s" });
    md.push("![Pool throughput against workers](scaling.svg)", "");
  }

  if (virt.workers > 0 || virt.jobs > 0) {
    md.push(`### Simulated workers (${SIMULATED_NOTE})`, "");
    md.push(
      `${virt.workers} virtual worker(s) ran ${virt.shards} shard(s), ${virt.samples} sample(s); ${virt.jobs} job(s) touched them. ` +
        "They model device tiers for load testing the coordinator; their rates are not measurements of any device.",
      "",
    );
    md.push(table(["simulated tier", "workers", "shards", "samples"], virt.byProfile.map((v) => [v.profile, String(v.workers), String(v.shards), String(v.samples)])), "");
  }

  // --- This pool in H100s ---
  md.push("## This pool in H100s", "");
  if (poolNow.length === 0) md.push("No real job finished with a measured rate, so the pool has no H100-equivalent yet.", "");
  else {
    md.push(
      table(
        ["model", "GFLOP/sample", "pool samples/s (fastest real job)", "H100 samples/s", "H100 rate is", "H100-equivalents", "pool GFLOP/s", "vs FP32 peak x util", "vs FP16 peak x util"],
        poolNow.map((e) => [
          e.modelName,
          g3(e.flopsPerSample / 1e9),
          g3(e.poolSamplesPerSec),
          g3(e.h100.samplesPerSec),
          e.h100.method,
          g3(e.h100Equivalents),
          g3(e.poolGflopsPerSec),
          g3(e.flopEquivalentFp32),
          g3(e.flopEquivalentFp16),
        ]),
      ),
      "",
      `FLOP-based equivalents divide the pool's GFLOP/s by H100 SXM peak (\`h100.sxm.fp32\`, \`h100.sxm.fp16\`) x utilization \`h100.utilization.central\` (${g3(p.h100.utilization.central.value)}).`,
      "",
    );
    charts["pool-h100.svg"] = barChart(
      "This pool in H100-equivalents, per model (measured)",
      poolNow.map((e) => ({ label: e.modelName, value: e.h100Equivalents, valueLabel: `${g3(e.h100Equivalents)} H100` })),
      { unit: "H100-equivalents" },
    );
    md.push("![This pool in H100-equivalents](pool-h100.svg)", "");
  }

  // --- Extrapolation ---
  const head = wls[0]!;
  const ex: Record<Variant, Extrapolation | null> = {
    peak: extrapolateWorkload(p, head, "peak", devices),
    measured: extrapolateWorkload(p, head, "measured", devices),
    pool: extrapolateWorkload(p, head, "pool", devices),
  };
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

  // --- Sensitivity ---
  md.push("## Sensitivity", "");
  const sensVariant: Variant = "measured";
  const tor = tornado(p, head, sensVariant, devices);
  if (tor) {
    md.push(`The ${VARIANT_LABELS[sensVariant]} answer for ${head.label} (baseline ${fmtCount(tor.baseline)} H100s) with one factor at a time at its bounds, largest swing first:`, "");
    md.push(
      table(
        ["factor", "low bound", "H100s at low", "high bound", "H100s at high", "swing"],
        tor.bars.map((b) => [b.factor, b.lowLabel, fmtCount(b.atLow), b.highLabel, fmtCount(b.atHigh), fmtCount(b.swing)]),
      ),
      "",
    );
    const idle = tor.bars.filter((b) => b.swing === 0).map((b) => b.factor);
    if (idle.length > 0) {
      md.push(`No swing from ${idle.join(", ")}: another limit (usually the network) caps every tier at these values, so these factors do not bind.`, "");
    }
    charts["tornado.svg"] = tornadoChart(
      `Sensitivity: ${head.label}, measured vs measured`,
      tor.baseline,
      tor.bars.map((b) => ({ label: b.factor, low: b.atLow, high: b.atHigh, lowLabel: b.lowLabel, highLabel: b.highLabel })),
      { unit: "H100-equivalents" },
    );
    md.push("![Sensitivity tornado](tornado.svg)", "");
  }
  const peakTor = tornado(p, head, "peak", devices);
  if (peakTor) {
    md.push(
      `Peak vs peak, the largest swing is ${peakTor.bars[0]?.factor ?? "n/a"} (${fmtCount(peakTor.bars[0]?.atLow ?? Number.NaN)} to ${fmtCount(peakTor.bars[0]?.atHigh ?? Number.NaN)} around ${fmtCount(peakTor.baseline)}).`,
      "",
    );
  }

  // --- Verdict ---
  md.push("## Verdict", "");
  if (ex.peak && ex.measured) {
    md.push(
      verdictText({
        devices,
        workload: head,
        peak: ex.peak,
        measured: ex.measured,
        pool: ex.pool,
        tornado: tor,
        poolNow: poolNow.reduce<(typeof poolNow)[number] | null>((best, e) => (best === null || e.h100Equivalents > best.h100Equivalents ? e : best), null),
        availability: p.availability.central.value,
        sustained: p.sustained.central.value,
        redundancy: p.redundancy.central.value,
        downlinkMbps: p.network.downlinkMbps.value,
      }),
      "",
    );
  }

  // --- Figures ---
  md.push("## Figures and sources", "");
  const figRows: string[][] = listFigures(p).map(([name, f]) => [`\`${name}\``, fmtValue(f.value), f.unit, f.kind, f.source]);
  for (const r of rates) {
    figRows.push([`worker ${r.workerName} on ${r.modelName}`, fmtValue(r.samplesPerSec), "samples/s", "measured", measuredSource]);
  }
  for (const e of eff) figRows.push([`job ${e.jobId} (${e.modelName})`, fmtValue(e.samplesPerSec), "samples/s", "measured", measuredSource]);
  for (const m of data.models) figRows.push([`FLOPs per sample of ${m.name ?? m.sha256.slice(0, 12)}`, fmtValue(m.flopsPerSample), "FLOP/sample", "measured", `counted from the model graph; ${opts.command}`]);
  figRows.push(["coordinator peak shards/s", fmtValue(c.peakShardsPerSec), "shards/s", "measured", measuredSource]);
  if (shardSec !== null) figRows.push(["mean busy seconds per shard", fmtValue(shardSec), "s", "measured", measuredSource]);
  md.push(table(["figure", "value", "unit", "kind", "source"], figRows), "");
  md.push(`Override any figure with \`--set path=number\` (e.g. \`--set availability.central=0.3\`) or a JSON file with \`--profiles\`; overridden figures are marked assumed.`, "");

  // --- Breaks ---
  md.push("## Where the equivalence breaks", "");
  md.push(
    "Only work made of many independent samples of a model that fits one device pools. Work that needs communication between devices does not: " +
      "training, or one large model split across devices, needs links like NVLink, and phone uplinks " +
      `(${g3(p.network.uplinkMbps.value)} Mbit/s median) are about 1e5 times slower. Phone memory (8-16 GB) caps the model a single device can hold. ` +
      `Untrusted devices need redundancy (k = ${g3(p.redundancy.untrusted.value)} halves the useful rate), and inputs must travel to the device, which the network factor above charges for.`,
    "",
  );

  // --- Reproduce ---
  md.push("## Reproduce", "", "```sh", opts.command, "```", "");
  return { markdown: md.join("\n"), charts };
}

async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, content, "utf8");
  await rename(tmp, file);
}

/** Writes report.md and its SVG charts into `dir` (created if needed), each file atomically. */
export async function writeReport(dir: string, data: ReportData, profiles: Profiles, opts: RenderOptions): Promise<{ reportPath: string; files: string[] }> {
  const { markdown, charts } = renderReport(data, profiles, opts);
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const [name, svg] of Object.entries(charts)) {
    const f = path.join(dir, name);
    await writeAtomic(f, svg);
    files.push(f);
  }
  const reportPath = path.join(dir, "report.md");
  await writeAtomic(reportPath, markdown);
  files.push(reportPath);
  return { reportPath, files };
}
